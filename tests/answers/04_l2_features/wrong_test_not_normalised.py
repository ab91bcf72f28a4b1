# expect: ✘ X_test is not normalised
import numpy as np

X_train = train[LAYER] / np.linalg.norm(train[LAYER], axis=1, keepdims=True)
X_test = test[LAYER]
