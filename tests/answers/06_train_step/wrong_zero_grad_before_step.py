# expect: ✘ zero_grad
def train_step(model, optimizer, loss_fn, x, y) -> float:
    """One optimizer step on the batch (x, y); returns its loss (before the update)."""
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()
