# expect: ✘ logits
def top_k(model, x, categories, k=5):
    model.eval()
    with torch.no_grad():
        scores = model(x.unsqueeze(0))[0]
    values, indices = scores.topk(k)
    return [(categories[i], float(v)) for v, i in zip(values, indices.tolist())]

for name, p in top_k(model, x, backbone.categories):
    print(f"{p:.3f}  {name}")
