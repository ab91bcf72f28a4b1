# expect: ✘ still trainable
# the last layer kept trainable "for the new head", before it exists
def freeze(model: nn.Module) -> None:
    """Freeze every parameter of ``model``, in place."""
    for p in list(model.parameters())[:-2]:
        p.requires_grad = False

vgg = tplib.build_model("vgg16")  # torchvision's VGG16, seeded random weights
freeze(vgg)
