# expect: ✘ unit L2 norm
# the whole matrix divided by its (Frobenius) norm
import numpy as np

X_train = train[LAYER] / np.linalg.norm(train[LAYER])
X_test = test[LAYER] / np.linalg.norm(test[LAYER])
