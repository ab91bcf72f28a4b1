# expect: ✘ new VGG16
# ignores the network it is given and builds a fresh (randomly initialised) VGG16
import torchvision

import torch
from torch import nn


class VGG16relu7(nn.Module):
    def __init__(self, vgg16):
        super().__init__()
        net = torchvision.models.vgg16()
        self.features = net.features
        self.classifier = net.classifier[:-2]

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))
