# expect: ✘ one row per image
import numpy as np

X_train = train[LAYER][:100] / np.linalg.norm(train[LAYER][:100], axis=1, keepdims=True)
X_test = test[LAYER] / np.linalg.norm(test[LAYER], axis=1, keepdims=True)
