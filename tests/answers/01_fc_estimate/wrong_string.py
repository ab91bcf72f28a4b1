# expect: ✘ whole number
fc_estimate = "123,633,664"
print(fc_estimate)
