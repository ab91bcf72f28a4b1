# expect: ✘ dict
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import LinearSVC

Cs = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
X_cv = tplib.l2_normalize(sweep_train[LAYER])
folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
cv_scores = [cross_val_score(LinearSVC(C=C, random_state=0), X_cv, y_train, cv=folds).mean()
             for C in Cs]
best_C = Cs[cv_scores.index(max(cv_scores))]
print(cv_scores, best_C)
