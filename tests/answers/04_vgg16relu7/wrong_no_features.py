# expect: ✘ wrong size
# the convolutional part forgotten: the classifier gets the image itself
import torch
from torch import nn


class VGG16relu7(nn.Module):
    def __init__(self, vgg16):
        super().__init__()
        self.classifier = vgg16.classifier[:-2]

    def forward(self, x):
        return self.classifier(torch.flatten(x, 1))
