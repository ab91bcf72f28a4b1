# expect: ✘ names
def top_k(model, x, categories, k=5):
    model.eval()
    with torch.no_grad():
        probs = model(x.unsqueeze(0))[0].softmax(dim=0)
    values, indices = probs.topk(k)
    return [(int(i), float(p)) for p, i in zip(values, indices)]

for name, p in top_k(model, x, backbone.categories):
    print(f"{p:.3f}  {name}")
