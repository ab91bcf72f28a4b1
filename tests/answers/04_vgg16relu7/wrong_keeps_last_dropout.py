# expect: ✘ Dropout
# [:-1] drops fc8 only: the Dropout after relu7 stays
import torch
from torch import nn


class VGG16relu7(nn.Module):
    def __init__(self, vgg16):
        super().__init__()
        self.features = vgg16.features
        self.classifier = vgg16.classifier[:-1]

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))
