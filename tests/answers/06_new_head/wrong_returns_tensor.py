# expect: ✘ not a layer
# the weights of a layer, not the layer
def new_head(in_features: int, n_classes: int, loss: str = "ce") -> nn.Module:
    """A new trainable layer: in_features -> n_classes scores ("ce") or 1 logit ("bce")."""
    return torch.randn(1 if loss == "bce" else n_classes, in_features, requires_grad=True)

# (the notebook's next line would fail on this; the check says why)
vgg.classifier[6] = nn.Linear(4096, K)
