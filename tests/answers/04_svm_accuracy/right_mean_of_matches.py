# expect: ✔
from sklearn.svm import LinearSVC

svm = LinearSVC(C=1.0, dual=False)
svm.fit(X_train, y_train)
accuracy = (svm.predict(X_test) == y_test).mean()
print(f"test accuracy: {accuracy:.3f}")
