# expect: ✘ no accuracy for layer
from sklearn.svm import LinearSVC

sweep_scores = {}
for layer in LAYERS[:-1]:
    X_tr, X_te = tplib.l2_normalize(sweep_train[layer]), tplib.l2_normalize(sweep_test[layer])
    sweep_scores[layer] = LinearSVC(C=1, random_state=0).fit(X_tr, y_train).score(X_te, y_test)
