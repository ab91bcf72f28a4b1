# expect: ✘ empty dict
# the exercise left as it was (the stub's raise removed)
from sklearn.svm import LinearSVC

sweep_scores = {}
pass
