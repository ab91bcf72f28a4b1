# expect: ✔
# A view instead of flatten; slicing the Sequential keeps it a Sequential.
import torch
from torch import nn


class VGG16relu7(nn.Module):
    def __init__(self, vgg16):
        super().__init__()
        self.features = vgg16.features
        self.classifier = vgg16.classifier[:5]

    def forward(self, x):
        x = self.features(x)
        x = x.view(x.size(0), -1)
        return self.classifier(x)
