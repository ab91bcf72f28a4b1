# expect: ✘ missing
fc_estimate = 7 * 7 * 512 * 4096 + 4096 * 4096
print(f"{fc_estimate:,}")
