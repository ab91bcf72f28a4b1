# expect: ✘ plain attribute
def freeze(model: nn.Module) -> None:
    """Freeze every parameter of ``model``, in place."""
    model.requires_grad = False

vgg = tplib.build_model("vgg16")  # torchvision's VGG16, seeded random weights
freeze(vgg)
