# expect: ✘ list of
def top_k(model, x, categories, k=5):
    model.eval()
    with torch.no_grad():
        probs = model(x.unsqueeze(0))[0].softmax(dim=0)
    return probs.topk(k)

