# expect: ✔
# scikit-learn's normalize, a dict comprehension.
from sklearn.svm import LinearSVC

sweep_scores = {}
from sklearn.preprocessing import normalize

sweep_scores = {layer: LinearSVC(C=1.0, random_state=1).fit(normalize(sweep_train[layer]), y_train)
                .score(normalize(sweep_test[layer]), y_test) for layer in LAYERS}
