# expect: ✔
# scikit-learn's normalize (L2 rows by default).
from sklearn.preprocessing import normalize

X_train = normalize(train[LAYER])
X_test = normalize(test[LAYER])
