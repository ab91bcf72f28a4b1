# expect: ✘ hypothesis
# exercise: hypothesis_1
# ran the experiment, kept the template's empty hypothesis
hypothesis_1 = ""
from sklearn.neighbors import KNeighborsClassifier

X_tr, X_te = tplib.l2_normalize(sweep_train[LAYER]), tplib.l2_normalize(sweep_test[LAYER])
results_1 = {"svm": full.accuracy,
             "5-NN": KNeighborsClassifier(5).fit(X_tr, y_train).score(X_te, y_test)}
print(results_1)
