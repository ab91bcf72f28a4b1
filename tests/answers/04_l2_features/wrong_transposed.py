# expect: ✘ transpose
# one column per image (the layout of some textbooks)
import numpy as np

X_train = (train[LAYER] / np.linalg.norm(train[LAYER], axis=1, keepdims=True)).T
X_test = (test[LAYER] / np.linalg.norm(test[LAYER], axis=1, keepdims=True)).T
