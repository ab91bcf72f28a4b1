# expect: ✘ eval()
def freeze(model: nn.Module) -> None:
    """Freeze every parameter of ``model``, in place."""
    model.eval()

vgg = tplib.build_model("vgg16")  # torchvision's VGG16, seeded random weights
freeze(vgg)
