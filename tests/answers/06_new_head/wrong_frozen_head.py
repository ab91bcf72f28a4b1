# expect: ✘ frozen
# frozen "like the rest of the network"
def new_head(in_features: int, n_classes: int, loss: str = "ce") -> nn.Module:
    """A new trainable layer: in_features -> n_classes scores ("ce") or 1 logit ("bce")."""
    return nn.Linear(in_features, 1 if loss == "bce" else n_classes).requires_grad_(False)

vgg.classifier[6] = new_head(4096, K)
