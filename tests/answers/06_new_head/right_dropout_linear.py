# expect: ✔
def new_head(in_features: int, n_classes: int, loss: str = "ce") -> nn.Module:
    """A new trainable layer: in_features -> n_classes scores ("ce") or 1 logit ("bce")."""
    if loss == "bce":
        return nn.Sequential(nn.Dropout(0.5), nn.Linear(in_features, 1))
    return nn.Sequential(nn.Dropout(0.5), nn.Linear(in_features, n_classes))

vgg.classifier[6] = new_head(4096, K)
