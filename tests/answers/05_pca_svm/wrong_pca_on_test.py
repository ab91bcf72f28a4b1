# expect: ✘ fitted on the test rows
# PCA learnt from the test rows, the SVM from the projected training rows
import time

from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer


def pca_svm_score(n_components, X_train, y_train, X_test, y_test):
    """L2 rows -> PCA(n_components) -> LinearSVC(C=1), fitted on the training rows.

    Returns (test accuracy, seconds the fit took).
    """
    start = time.perf_counter()
    Xtr, Xte = tplib.l2_normalize(X_train), tplib.l2_normalize(X_test)
    reducer = PCA(n_components, random_state=0).fit(Xte)
    svm = LinearSVC(C=1, random_state=0, max_iter=10_000).fit(reducer.transform(Xtr), y_train)
    seconds = time.perf_counter() - start
    return svm.score(reducer.transform(Xte), y_test), seconds

n_max = min(sweep_train[LAYER].shape)
components = [n for n in (8, 16, 32, 64, 128, 256) if n <= n_max]
pca = {n: pca_svm_score(n, sweep_train[LAYER], y_train, sweep_test[LAYER], y_test) for n in components}
