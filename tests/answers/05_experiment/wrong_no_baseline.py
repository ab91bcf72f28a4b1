# expect: ✘ at least two settings
# exercise: hypothesis_2
hypothesis_2 = "With two images per class the SVM should still beat chance by a wide margin."
rows = tplib.going_further.first_per_class(y_train, 2)
results_2 = {"2 per class": tplib.svm_fit_score(sweep_train[LAYER][rows], y_train[rows],
                                                 sweep_test[LAYER], y_test, C=1).accuracy}
print(results_2)
