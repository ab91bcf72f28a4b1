# expect: ✔
# Switches to eval mode and puts the model back in the mode the caller left it in.
def top_k(model, x, categories, k=5):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(x[None]), dim=1)[0]
    model.train(was_training)
    p, i = torch.topk(probs, k)
    return [(categories[j], float(q)) for q, j in zip(p, i.tolist())]

for name, p in top_k(model, x, backbone.categories):
    print(f"{p:.3f}  {name}")
