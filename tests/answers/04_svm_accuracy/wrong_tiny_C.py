# expect: ✘ points away
# a C so small that the SVM barely fits anything
from sklearn.svm import LinearSVC

svm = LinearSVC(C=1e-4, random_state=0).fit(X_train, y_train)
accuracy = svm.score(X_test, y_test)
print(f"test accuracy: {accuracy:.3f}")
