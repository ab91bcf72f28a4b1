# expect: ✘ scored on the images it was fitted on
from sklearn.svm import LinearSVC

sweep_scores = {}
for layer in LAYERS:
    X_tr = tplib.l2_normalize(sweep_train[layer])
    sweep_scores[layer] = LinearSVC(C=1, random_state=0).fit(X_tr, y_train).score(X_tr, y_train)
