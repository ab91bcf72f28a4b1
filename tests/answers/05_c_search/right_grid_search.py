# expect: ✔
# GridSearchCV over C, its mean test scores read back into the dict.
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import LinearSVC

Cs = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
X_cv = tplib.l2_normalize(sweep_train[LAYER])
folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
from sklearn.model_selection import GridSearchCV

search = GridSearchCV(LinearSVC(random_state=0), {"C": Cs}, cv=folds).fit(X_cv, y_train)
cv_scores = dict(zip(Cs, search.cv_results_["mean_test_score"]))
best_C = search.best_params_["C"]
for C in Cs:
    print(f"C = {C:<7g} mean cross-validation accuracy {cv_scores[C]:.3f}")
print(f"chosen: C = {best_C:g}")
