# expect: ✘ test split
from sklearn.svm import LinearSVC

svm = LinearSVC(C=1, random_state=0).fit(X_test, y_test)
accuracy = svm.score(X_test, y_test)
print(f"test accuracy: {accuracy:.3f}")
