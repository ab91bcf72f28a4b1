# expect: ✘ millions
fc_estimate = 123.6  # million
print(fc_estimate)
