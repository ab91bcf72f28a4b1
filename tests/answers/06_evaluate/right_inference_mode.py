# expect: ✔
def evaluate(model, X, y) -> float:
    """Accuracy of ``model`` on inputs X and labels y, in eval mode, without gradients."""
    model.eval()
    with torch.inference_mode():
        out = model(X)
    if out.shape[1] == 1:
        pred = (torch.sigmoid(out[:, 0]) > 0.5).long()
    else:
        pred = out.argmax(dim=1)
    return (pred == y).float().mean().item()
