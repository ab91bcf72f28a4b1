# expect: ✔
# One row at a time, the norm written out.
import numpy as np


def unit_rows(A):
    out = np.empty_like(A)
    for i, row in enumerate(A):
        out[i] = row / np.sqrt(np.sum(row ** 2))
    return out


X_train = unit_rows(train[LAYER])
X_test = unit_rows(test[LAYER])
