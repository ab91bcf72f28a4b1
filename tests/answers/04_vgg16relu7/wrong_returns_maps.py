# expect: ✘ (N, 512, 7, 7)
import torch
from torch import nn


class VGG16relu7(nn.Module):
    def __init__(self, vgg16):
        super().__init__()
        self.features = vgg16.features
        self.classifier = vgg16.classifier[:-2]

    def forward(self, x):
        x = self.features(x)
        self.classifier(torch.flatten(x, 1))
        return x
