# expect: ✘ not this batch's loss
# the loss computed again after the step
def train_step(model, optimizer, loss_fn, x, y) -> float:
    """One optimizer step on the batch (x, y); returns its loss (before the update)."""
    optimizer.zero_grad()
    loss_fn(model(x), y).backward()
    optimizer.step()
    with torch.no_grad():
        return loss_fn(model(x), y).item()
