# expect: ✔
# The three steps by hand instead of a pipeline.
import time

from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer


def pca_svm_score(n_components, X_train, y_train, X_test, y_test):
    """L2 rows -> PCA(n_components) -> LinearSVC(C=1), fitted on the training rows.

    Returns (test accuracy, seconds the fit took).
    """
    t0 = time.time()
    Xtr = tplib.l2_normalize(X_train)
    reducer = PCA(n_components=n_components, random_state=0).fit(Xtr)
    svm = LinearSVC(C=1, random_state=0).fit(reducer.transform(Xtr), y_train)
    seconds = time.time() - t0
    acc = svm.score(reducer.transform(tplib.l2_normalize(X_test)), y_test)
    return acc, seconds

n_max = min(sweep_train[LAYER].shape)
components = [n for n in (8, 16, 32, 64, 128, 256) if n <= n_max]
pca = {n: pca_svm_score(n, sweep_train[LAYER], y_train, sweep_test[LAYER], y_test) for n in components}
