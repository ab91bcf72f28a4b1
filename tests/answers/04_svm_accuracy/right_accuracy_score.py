# expect: ✔
# scikit-learn's accuracy_score on the predictions, default C (1.0), another seed.
from sklearn.svm import LinearSVC
from sklearn.metrics import accuracy_score

svm = LinearSVC(random_state=42).fit(X_train, y_train)
accuracy = accuracy_score(y_test, svm.predict(X_test))
print(f"test accuracy: {accuracy:.3f}")
