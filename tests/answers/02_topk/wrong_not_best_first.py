# expect: ✘ best first
def top_k(model, x, categories, k=5):
    model.eval()
    with torch.no_grad():
        probs = model(x.unsqueeze(0))[0].softmax(dim=0)
    order = probs.argsort()[-k:]  # the k largest, but smallest first
    return [(categories[i], float(probs[i])) for i in order.tolist()]

for name, p in top_k(model, x, backbone.categories):
    print(f"{p:.3f}  {name}")
