# expect: verdict
# Right values, returned as float64: the check must give a verdict, not raise.
import torch
from torch import nn


class VGG16relu7(nn.Module):
    def __init__(self, vgg16):
        super().__init__()
        self.features = vgg16.features
        self.classifier = vgg16.classifier[:-2]

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.classifier(x).double()
