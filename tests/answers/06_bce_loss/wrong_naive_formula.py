# expect: ✘ large
# the textbook formula with log(sigmoid): inf for large logits
def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of (N, 1) logits against (N,) labels 0/1."""
    p = torch.sigmoid(logits[:, 0])
    t = y.float()
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()
