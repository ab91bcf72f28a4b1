# expect: ✘ Dropout
# Dropout(1.0) after the layer: in training every score is zeroed
def new_head(in_features: int, n_classes: int, loss: str = "ce") -> nn.Module:
    """A new trainable layer: in_features -> n_classes scores ("ce") or 1 logit ("bce")."""
    return nn.Sequential(nn.Linear(in_features, 1 if loss == "bce" else n_classes), nn.Dropout(1.0))

vgg.classifier[6] = new_head(4096, K)
