# expect: ✘ no gradient
def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of (N, 1) logits against (N,) labels 0/1."""
    return nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y.float()).item()
