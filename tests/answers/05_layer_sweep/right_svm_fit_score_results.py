# expect: ✔
# the library's one call per layer, results kept whole (SVMResult values)
from sklearn.svm import LinearSVC

sweep_scores = {}
sweep_scores = {layer: tplib.svm_fit_score(sweep_train[layer], y_train, sweep_test[layer], y_test, C=1)
                for layer in LAYERS}
