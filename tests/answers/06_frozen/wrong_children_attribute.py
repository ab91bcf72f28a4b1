# expect: ✘ requires_grad=True
# the attribute set on every child module, never on a parameter
def freeze(model: nn.Module) -> None:
    """Freeze every parameter of ``model``, in place."""
    for child in model.children():
        child.requires_grad = False

vgg = tplib.build_model("vgg16")  # torchvision's VGG16, seeded random weights
freeze(vgg)
