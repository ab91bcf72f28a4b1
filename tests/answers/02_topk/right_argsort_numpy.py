# expect: ✔
# NumPy argsort of the probabilities, tuples of (name, numpy float).
def top_k(model, x, categories, k=5):
    model.eval()
    with torch.no_grad():
        probs = model(torch.stack([x])).softmax(1)[0].numpy()
    order = np.argsort(-probs)[:k]
    return [(categories[i], probs[i]) for i in order]

for name, p in top_k(model, x, backbone.categories):
    print(f"{p:.3f}  {name}")
