# expect: ✘ fitted on
from sklearn.svm import LinearSVC

svm = LinearSVC(C=1, random_state=0).fit(X_train, y_train)
accuracy = svm.score(X_train, y_train)
print(f"test accuracy: {accuracy:.3f}")
