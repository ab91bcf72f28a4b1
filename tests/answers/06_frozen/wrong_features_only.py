# expect: ✘ still trainable
# the convolutional part frozen, the classifier forgotten
def freeze(model: nn.Module) -> None:
    """Freeze every parameter of ``model``, in place."""
    for p in model.features.parameters():
        p.requires_grad = False

vgg = tplib.build_model("vgg16")  # torchvision's VGG16, seeded random weights
freeze(vgg)
