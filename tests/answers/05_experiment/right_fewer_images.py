# expect: ✔
# exercise: hypothesis_2
hypothesis_2 = "With half the training images per class the accuracy should drop by only a few points."
results_2 = {}
for k in (10, 20):
    rows = tplib.going_further.first_per_class(y_train, k)
    results_2[f"{k} per class"] = tplib.svm_fit_score(sweep_train[LAYER][rows], y_train[rows],
                                                      sweep_test[LAYER], y_test, C=1).accuracy
print(results_2)
