# expect: ✘ unit L2 norm
from sklearn.preprocessing import normalize

X_train = normalize(train[LAYER], norm="l1")
X_test = normalize(test[LAYER], norm="l1")
