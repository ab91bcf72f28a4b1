# expect: ✔
# Module by module, each one's own parameters.
def freeze(model: nn.Module) -> None:
    """Freeze every parameter of ``model``, in place."""
    for module in model.modules():
        for p in module.parameters(recurse=False):
            p.requires_grad = False

vgg = tplib.build_model("vgg16")  # torchvision's VGG16, seeded random weights
freeze(vgg)
