# expect: ✔
# Written out with logsigmoid, stable for large logits.
def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of (N, 1) logits against (N,) labels 0/1."""
    z, t = logits[:, 0], y.float()
    return -(t * nn.functional.logsigmoid(z) + (1 - t) * nn.functional.logsigmoid(-z)).mean()
