# expect: ✘ biases
fc_estimate = (25088 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
print(f"{fc_estimate:,}")
