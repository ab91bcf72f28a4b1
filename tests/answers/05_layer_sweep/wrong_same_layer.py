# expect: ✘ same accuracy
# the loop reads LAYER (the default layer) instead of its own layer
from sklearn.svm import LinearSVC

sweep_scores = {}
for layer in LAYERS:
    X_tr, X_te = tplib.l2_normalize(sweep_train[LAYER]), tplib.l2_normalize(sweep_test[LAYER])
    sweep_scores[layer] = LinearSVC(C=1, random_state=0).fit(X_tr, y_train).score(X_te, y_test)
