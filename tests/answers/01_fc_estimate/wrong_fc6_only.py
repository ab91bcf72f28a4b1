# expect: ✘ fc7
# Only fc6 counted: the hint must name the layers left out (fc7 and fc8), not "fc6 looks wrong".
fc_estimate = 7 * 7 * 512 * 4096
print(f"{fc_estimate:,}")
