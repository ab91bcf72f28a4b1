# expect: ✔
def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of (N, 1) logits against (N,) labels 0/1."""
    z = logits.view(-1)
    return (nn.functional.softplus(z) - y.to(z.dtype) * z).mean()
