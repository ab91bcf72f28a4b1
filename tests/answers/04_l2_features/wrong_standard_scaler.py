# expect: ✘ unit L2 norm
# standardised columns (mean 0, std 1) instead of unit-length rows
from sklearn.preprocessing import StandardScaler

scaler = StandardScaler().fit(train[LAYER])
X_train, X_test = scaler.transform(train[LAYER]), scaler.transform(test[LAYER])
