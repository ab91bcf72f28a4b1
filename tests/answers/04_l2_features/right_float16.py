# expect: ✔
# The notebook's own solution on float16 features (half the memory): still unit rows.
import numpy as np

F_train, F_test = train[LAYER].astype(np.float16), test[LAYER].astype(np.float16)
X_train = F_train / np.linalg.norm(F_train, axis=1, keepdims=True)
X_test = F_test / np.linalg.norm(F_test, axis=1, keepdims=True)
