# expect: ✘ fc6
# fc6 taken as 4096 x 4096 like fc7
fc_estimate = 4096 * 4096 + 4096 * 4096 + 4096 * 1000
print(f"{fc_estimate:,}")
