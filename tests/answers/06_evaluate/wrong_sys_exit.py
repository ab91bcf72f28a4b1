# expect: ✘
# Leaves the interpreter instead of answering: a verdict all the same.
import sys

def evaluate(model, X, y) -> float:
    """Accuracy of ``model`` on inputs X and labels y, in eval mode, without gradients."""
    sys.exit(0)
