# expect: ✔
# Keeps the whole network and runs the classifier's first five layers by hand.
import torch
from torch import nn


class VGG16relu7(nn.Module):
    def __init__(self, vgg16):
        super().__init__()
        self.vgg = vgg16

    def forward(self, x):
        x = torch.flatten(self.vgg.features(x), start_dim=1)
        for layer in list(self.vgg.classifier)[:-2]:
            x = layer(x)
        return x
