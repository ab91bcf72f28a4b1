# expect: ✔
# tplib's own helper per layer (it normalises the rows itself).
from sklearn.svm import LinearSVC

sweep_scores = {}
for layer in LAYERS:
    sweep_scores[layer] = tplib.svm_fit_score(sweep_train[layer], y_train, sweep_test[layer], y_test,
                                              C=1).accuracy
