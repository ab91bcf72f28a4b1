# expect: ✔
# The right count written with a float: a whole number all the same.
fc_estimate = 25088.0 * 4096 + 4096 * 4096 + 4096 * 1000
print(f"{fc_estimate:,}")
