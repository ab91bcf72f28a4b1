# expect: ✘ requires_grad=True
# torch.no_grad() only holds inside its block: nothing stays frozen
def freeze(model: nn.Module) -> None:
    """Freeze every parameter of ``model``, in place."""
    with torch.no_grad():
        for p in model.parameters():
            p.grad = None

vgg = tplib.build_model("vgg16")  # torchvision's VGG16, seeded random weights
freeze(vgg)
