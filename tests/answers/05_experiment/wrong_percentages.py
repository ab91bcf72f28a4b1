# expect: ✘ percentage
# exercise: hypothesis_2
hypothesis_2 = "With five images per class the accuracy should stay within ten points of twenty per class."
results_2 = {}
for k in (5, 20):
    rows = tplib.going_further.first_per_class(y_train, k)
    results_2[f"{k} per class"] = 100 * tplib.svm_fit_score(
        sweep_train[LAYER][rows], y_train[rows], sweep_test[LAYER], y_test, C=1).accuracy
print(results_2)
