# expect: ✘ nn.Module
import torch
from torch import nn


class VGG16relu7:
    def __init__(self, vgg16):
        self.features = vgg16.features
        self.classifier = vgg16.classifier[:-2]

    def __call__(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))
