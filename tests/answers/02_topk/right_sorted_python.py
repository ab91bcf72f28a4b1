# expect: ✔
# Plain Python sort over the 1000 probabilities, F.softmax, inference_mode.
import torch.nn.functional as F


def top_k(model, x, categories, k=5):
    model.eval()
    with torch.inference_mode():
        probs = F.softmax(model(x.unsqueeze(0)), dim=-1).squeeze(0).tolist()
    best = sorted(range(len(probs)), key=lambda i: probs[i], reverse=True)[:k]
    return [(categories[i], probs[i]) for i in best]

for name, p in top_k(model, x, backbone.categories):
    print(f"{p:.3f}  {name}")
