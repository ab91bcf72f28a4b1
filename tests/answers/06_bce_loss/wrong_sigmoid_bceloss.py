# expect: ✘ large
# sigmoid then BCELoss: right for moderate logits, saturates for large ones
def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of (N, 1) logits against (N,) labels 0/1."""
    return nn.BCELoss()(torch.sigmoid(logits[:, 0]), y.float())
