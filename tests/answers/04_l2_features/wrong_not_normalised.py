# expect: ✘ not normalised
X_train = train[LAYER]
X_test = test[LAYER]
