# expect: ✘ does not take 1280
# VGG16's 4096 written in, whatever in_features says
def new_head(in_features: int, n_classes: int, loss: str = "ce") -> nn.Module:
    """A new trainable layer: in_features -> n_classes scores ("ce") or 1 logit ("bce")."""
    return nn.Linear(4096, 1 if loss == "bce" else n_classes)

vgg.classifier[6] = new_head(4096, K)
