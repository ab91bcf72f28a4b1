# expect: ✔
# exercise: hypothesis_1
hypothesis_1 = "Logistic regression should score about as well as the linear SVM, because both learn a linear boundary."
from sklearn.linear_model import LogisticRegression

X_tr, X_te = tplib.l2_normalize(sweep_train[LAYER]), tplib.l2_normalize(sweep_test[LAYER])
results_1 = {
    "LinearSVC(C=1)": full.accuracy,
    "LogisticRegression": LogisticRegression(max_iter=2_000).fit(X_tr, y_train).score(X_te, y_test),
}
print(results_1)
