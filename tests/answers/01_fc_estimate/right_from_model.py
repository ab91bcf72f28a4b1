# expect: ✔
# Counted from the model itself: in_features x out_features of each Linear layer.
import torch

fc_estimate = sum(m.in_features * m.out_features for m in model.classifier
                  if isinstance(m, torch.nn.Linear))
print(f"{fc_estimate:,}")
