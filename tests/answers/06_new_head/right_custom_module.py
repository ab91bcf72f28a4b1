# expect: ✔
# A module class of one's own.
class Head(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x):
        return self.fc(x)


def new_head(in_features: int, n_classes: int, loss: str = "ce") -> nn.Module:
    """A new trainable layer: in_features -> n_classes scores ("ce") or 1 logit ("bce")."""
    return Head(in_features, n_classes if loss == "ce" else 1)

vgg.classifier[6] = new_head(4096, K)
