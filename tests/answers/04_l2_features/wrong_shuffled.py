# expect: ✘ another order
# shuffled "to help the SVM": the rows no longer match y_train
import numpy as np

X_train = train[LAYER] / np.linalg.norm(train[LAYER], axis=1, keepdims=True)
X_test = test[LAYER] / np.linalg.norm(test[LAYER], axis=1, keepdims=True)
X_train = X_train[np.random.default_rng(0).permutation(len(X_train))]
