# expect: ✘
# timeout: 90
# A loop that never ends: the check must stop it after a few seconds and say so.
def top_k(model, x, categories, k=5):
    model.eval()
    pairs = []
    while len(pairs) < k:  # pairs never grows
        pass
    return pairs
