# expect: ✔
# Keeps VGG16's avgpool (7 x 7 -> 7 x 7 on 224 x 224 input, so no change) and reshapes.
import torch
from torch import nn


class VGG16relu7(nn.Module):
    def __init__(self, vgg16):
        super().__init__()
        self.features = vgg16.features
        self.avgpool = vgg16.avgpool
        self.classifier = nn.Sequential(*[vgg16.classifier[i] for i in range(5)])

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.reshape(len(x), 25088))
