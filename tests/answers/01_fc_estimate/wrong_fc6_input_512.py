# expect: ✘ fc6
# pool5 has 512 maps, but each is 7 x 7: the 49 is forgotten
fc_estimate = 512 * 4096 + 4096 * 4096 + 4096 * 1000
print(f"{fc_estimate:,}")
