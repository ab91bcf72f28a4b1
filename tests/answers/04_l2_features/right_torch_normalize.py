# expect: ✔
# torch's F.normalize along dim 1, back to NumPy.
import torch
import torch.nn.functional as F

X_train = F.normalize(torch.from_numpy(train[LAYER]), dim=1).numpy()
X_test = F.normalize(torch.from_numpy(test[LAYER]), dim=1).numpy()
