# expect: ✘ a number
# the predictions, not their accuracy
from sklearn.svm import LinearSVC

svm = LinearSVC(C=1, random_state=0).fit(X_train, y_train)
accuracy = svm.predict(X_test)
print(accuracy[:10])
