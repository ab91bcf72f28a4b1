# expect: ✘
# timeout: 90
# "train until the loss is small": never ends on this batch
def train_step(model, optimizer, loss_fn, x, y) -> float:
    """One optimizer step on the batch (x, y); returns its loss (before the update)."""
    loss = loss_fn(model(x), y)
    while loss.item() > -1:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    return loss.item()
