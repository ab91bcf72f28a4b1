# expect: ✔
# the loop with scikit-learn, as the exercise says
from sklearn.svm import LinearSVC

sweep_scores = {}
for layer in LAYERS:
    X_tr, X_te = tplib.l2_normalize(sweep_train[layer]), tplib.l2_normalize(sweep_test[layer])
    svm = LinearSVC(C=1, random_state=0, max_iter=10_000).fit(X_tr, y_train)
    sweep_scores[layer] = svm.score(X_te, y_test)
