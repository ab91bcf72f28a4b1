# expect: ✔
def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of (N, 1) logits against (N,) labels 0/1."""
    return nn.BCEWithLogitsLoss()(logits.squeeze(1), y.float())
