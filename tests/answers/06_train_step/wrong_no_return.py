# expect: ✘ return the loss
def train_step(model, optimizer, loss_fn, x, y) -> float:
    """One optimizer step on the batch (x, y); returns its loss (before the update)."""
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
