# expect: ✘ other split
import numpy as np

X_test = train[LAYER] / np.linalg.norm(train[LAYER], axis=1, keepdims=True)
X_train = test[LAYER] / np.linalg.norm(test[LAYER], axis=1, keepdims=True)
