# expect: ✘ columns
import numpy as np

X_train = train[LAYER] / np.linalg.norm(train[LAYER], axis=0, keepdims=True)
X_test = test[LAYER] / np.linalg.norm(test[LAYER], axis=0, keepdims=True)
