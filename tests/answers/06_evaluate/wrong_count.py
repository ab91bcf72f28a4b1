# expect: ✘ number of correct
def evaluate(model, X, y) -> float:
    """Accuracy of ``model`` on inputs X and labels y, in eval mode, without gradients."""
    model.eval()
    with torch.no_grad():
        logits = model(X)
    pred = logits.argmax(1) if logits.shape[1] > 1 else (logits[:, 0] > 0).long()
    return (pred == y).sum().item()
