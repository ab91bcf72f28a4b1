# expect: ✔
# model.zero_grad() clears the same gradients; the loss value read before the step.
def train_step(model, optimizer, loss_fn, x, y) -> float:
    """One optimizer step on the batch (x, y); returns its loss (before the update)."""
    model.zero_grad()
    loss = loss_fn(model(x), y)
    value = loss.detach().item()
    loss.backward()
    optimizer.step()
    return value
