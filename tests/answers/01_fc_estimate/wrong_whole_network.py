# expect: ✘ whole network
fc_estimate = tplib.count_parameters(model)
print(f"{fc_estimate:,}")
