# expect: ✘ class 1
# the sigmoid compared with 0 instead of 0.5
def evaluate(model, X, y) -> float:
    """Accuracy of ``model`` on inputs X and labels y, in eval mode, without gradients."""
    model.eval()
    with torch.no_grad():
        logits = model(X)
    if logits.shape[1] > 1:
        pred = logits.argmax(1)
    else:
        pred = (torch.sigmoid(logits[:, 0]) > 0).long()
    return (pred == y).float().mean().item()
