# expect: ✔
# The weight tensors of fc6, fc7 and fc8 (indices 0, 3, 6 of the classifier), biases left out.
fc_estimate = sum(model.classifier[i].weight.numel() for i in (0, 3, 6))
print(f"{fc_estimate:,}")
