# expect: ✘ layer names
from sklearn.svm import LinearSVC

sweep_scores = {}
for i, layer in enumerate(LAYERS):
    X_tr, X_te = tplib.l2_normalize(sweep_train[layer]), tplib.l2_normalize(sweep_test[layer])
    sweep_scores[i] = LinearSVC(C=1, random_state=0).fit(X_tr, y_train).score(X_te, y_test)
