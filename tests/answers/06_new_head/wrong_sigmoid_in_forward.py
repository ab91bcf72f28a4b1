# expect: ✘ sigmoid
# torch.sigmoid applied inside forward: no Sigmoid module to see
class Head(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x):
        return torch.sigmoid(self.fc(x))


def new_head(in_features: int, n_classes: int, loss: str = "ce") -> nn.Module:
    """A new trainable layer: in_features -> n_classes scores ("ce") or 1 logit ("bce")."""
    return Head(in_features, 1 if loss == "bce" else n_classes)

vgg.classifier[6] = new_head(4096, K)
