# expect: ✘ highest score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import LinearSVC

Cs = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
X_cv = tplib.l2_normalize(sweep_train[LAYER])
folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
cv_scores = {C: cross_val_score(LinearSVC(C=C, random_state=0), X_cv, y_train, cv=folds).mean()
             for C in Cs}
best_C = min(cv_scores, key=cv_scores.get)
for C in Cs:
    print(f"C = {C:<7g} mean cross-validation accuracy {cv_scores[C]:.3f}")
print(f"chosen: C = {best_C:g}")
