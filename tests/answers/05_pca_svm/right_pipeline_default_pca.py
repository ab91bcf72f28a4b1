# expect: ✔
# the solution's pipeline, PCA without a random_state (the full data fits either solver)
import time

from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer


def pca_svm_score(n_components, X_train, y_train, X_test, y_test):
    """L2 rows -> PCA(n_components) -> LinearSVC(C=1), fitted on the training rows.

    Returns (test accuracy, seconds the fit took).
    """
    model = make_pipeline(Normalizer(), PCA(n_components), LinearSVC(C=1, max_iter=10_000))
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    return model.score(X_test, y_test), seconds

n_max = min(sweep_train[LAYER].shape)
components = [n for n in (8, 16, 32, 64, 128, 256) if n <= n_max]
pca = {n: pca_svm_score(n, sweep_train[LAYER], y_train, sweep_test[LAYER], y_test) for n in components}
