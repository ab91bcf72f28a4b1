# expect: ✔
X_train, X_test = tplib.l2_normalize(train[LAYER]), tplib.l2_normalize(test[LAYER])
