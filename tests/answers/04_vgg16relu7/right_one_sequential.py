# expect: ✔
# Everything in one Sequential with nn.Flatten, copied with deepcopy.
import copy

import torch
from torch import nn


class VGG16relu7(nn.Module):
    def __init__(self, vgg16):
        super().__init__()
        self.net = nn.Sequential(
            copy.deepcopy(vgg16.features),
            nn.Flatten(),
            *list(copy.deepcopy(vgg16.classifier).children())[:5],
        )

    def forward(self, x):
        return self.net(x)
