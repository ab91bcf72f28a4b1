# expect: ✘ at least 8 words
# exercise: hypothesis_1
hypothesis_1 = "kNN worse"
from sklearn.neighbors import KNeighborsClassifier

X_tr, X_te = tplib.l2_normalize(sweep_train[LAYER]), tplib.l2_normalize(sweep_test[LAYER])
results_1 = {"svm": full.accuracy,
             "5-NN": KNeighborsClassifier(5).fit(X_tr, y_train).score(X_te, y_test)}
print(results_1)
