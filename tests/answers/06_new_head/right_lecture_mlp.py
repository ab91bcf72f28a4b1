# expect: ✔
# The lecture's small head without its final Sigmoid (the loss applies it).
def new_head(in_features: int, n_classes: int, loss: str = "ce") -> nn.Module:
    """A new trainable layer: in_features -> n_classes scores ("ce") or 1 logit ("bce")."""
    return nn.Sequential(nn.Linear(in_features, 128), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(128, 1 if loss == "bce" else n_classes))

vgg.classifier[6] = new_head(4096, K)
