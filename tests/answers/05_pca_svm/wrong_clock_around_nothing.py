# expect: ✘ 0.0 s
# the clock read twice before fit: every time is 0.0 s
import time

from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer


def pca_svm_score(n_components, X_train, y_train, X_test, y_test):
    """L2 rows -> PCA(n_components) -> LinearSVC(C=1), fitted on the training rows.

    Returns (test accuracy, seconds the fit took).
    """
    model = make_pipeline(Normalizer(), PCA(n_components, random_state=0),
                          LinearSVC(C=1, random_state=0, max_iter=10_000))
    start = time.perf_counter()
    seconds = time.perf_counter() - start
    model.fit(X_train, y_train)
    return model.score(X_test, y_test), seconds

n_max = min(sweep_train[LAYER].shape)
components = [n for n in (8, 16, 32, 64, 128, 256) if n <= n_max]
pca = {n: pca_svm_score(n, sweep_train[LAYER], y_train, sweep_test[LAYER], y_test) for n in components}
