# expect: verdict
# Torch tensors that require grad: the check must give a verdict, not raise.
import torch

X_train = torch.nn.functional.normalize(torch.tensor(train[LAYER], requires_grad=True), dim=1)
X_test = torch.nn.functional.normalize(torch.tensor(test[LAYER], requires_grad=True), dim=1)
