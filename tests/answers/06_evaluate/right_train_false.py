# expect: ✔
# model.train(False) is eval mode; the count divided by len(y).
def evaluate(model, X, y) -> float:
    """Accuracy of ``model`` on inputs X and labels y, in eval mode, without gradients."""
    model.train(False)
    with torch.no_grad():
        logits = model(X)
    pred = logits.argmax(1) if logits.size(1) > 1 else logits.squeeze(1).gt(0).long()
    return int((pred == y).sum()) / len(y)
