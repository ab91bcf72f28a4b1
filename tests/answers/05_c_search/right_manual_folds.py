# expect: ✔
# The folds written out: fit on k-1 folds, score on the held-out one.
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import LinearSVC

Cs = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
X_cv = tplib.l2_normalize(sweep_train[LAYER])
folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
import numpy as np

cv_scores = {}
for C in Cs:
    accs = []
    for fit_idx, held_idx in folds.split(X_cv, y_train):
        svm = LinearSVC(C=C, random_state=0).fit(X_cv[fit_idx], y_train[fit_idx])
        accs.append(svm.score(X_cv[held_idx], y_train[held_idx]))
    cv_scores[C] = float(np.mean(accs))
best_C = max(Cs, key=lambda C: cv_scores[C])
for C in Cs:
    print(f"C = {C:<7g} mean cross-validation accuracy {cv_scores[C]:.3f}")
print(f"chosen: C = {best_C:g}")
