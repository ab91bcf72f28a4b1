# expect: ✘ shuffled together
# A DataLoader with shuffle=True (copied from a training loop): rows and labels still
# match each other, but row i is no longer the image split.paths[i].
from torch.utils.data import DataLoader

def to_input(path):
    img = Image.open(path).convert("RGB").resize((SIZE, SIZE), RESAMPLE)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def extract(net, split, batch_size=16):
    pairs = [(p, int(y)) for p, y in zip(split.paths, split.labels)]
    loader = DataLoader(pairs, batch_size=batch_size, shuffle=True,
                        collate_fn=lambda b: (torch.stack([to_input(p) for p, _ in b]),
                                              torch.tensor([y for _, y in b])))
    net.eval()
    rows, labels = [], []
    with torch.no_grad():
        for x, y in loader:
            rows.append(net(x).numpy())
            labels.append(y.numpy())
    X = np.concatenate(rows)
    return X / np.linalg.norm(X, axis=1, keepdims=True), np.concatenate(labels)


X_train, y_train = extract(net, small.train)
X_test, y_test = extract(net, small.test)
