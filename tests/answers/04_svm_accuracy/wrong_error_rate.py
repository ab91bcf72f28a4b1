# expect: ✘ points away
# the error rate instead of the accuracy
from sklearn.svm import LinearSVC

svm = LinearSVC(C=1, random_state=0).fit(X_train, y_train)
accuracy = 1 - svm.score(X_test, y_test)
print(f"test accuracy: {accuracy:.3f}")
