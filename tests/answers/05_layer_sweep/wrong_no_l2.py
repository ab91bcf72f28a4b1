# expect: ✘ L2
# rows fed as they come out of the network
from sklearn.svm import LinearSVC

sweep_scores = {}
for layer in LAYERS:
    svm = LinearSVC(C=1, random_state=0, max_iter=10_000).fit(sweep_train[layer], y_train)
    sweep_scores[layer] = svm.score(sweep_test[layer], y_test)
