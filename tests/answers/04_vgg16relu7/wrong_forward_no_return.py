# expect: ✘ return a tensor
import torch
from torch import nn


class VGG16relu7(nn.Module):
    def __init__(self, vgg16):
        super().__init__()
        self.features = vgg16.features
        self.classifier = vgg16.classifier[:-2]

    def forward(self, x):
        x = self.classifier(torch.flatten(self.features(x), 1))
