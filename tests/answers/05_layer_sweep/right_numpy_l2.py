# expect: ✔
# numpy L2 by hand, default random_state, another max_iter
from sklearn.svm import LinearSVC

sweep_scores = {}
import numpy as np

for layer in LAYERS:
    A, B = sweep_train[layer], sweep_test[layer]
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    sweep_scores[layer] = float(LinearSVC(C=1.0, max_iter=20_000).fit(A, y_train).score(B, y_test))
