# expect: ✔
# A pipeline that normalises the raw features itself.
from sklearn.svm import LinearSVC
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer

pipe = make_pipeline(Normalizer(), LinearSVC(C=1, random_state=0))
pipe.fit(train[LAYER], y_train)
accuracy = pipe.score(test[LAYER], y_test)
print(f"test accuracy: {accuracy:.3f}")
