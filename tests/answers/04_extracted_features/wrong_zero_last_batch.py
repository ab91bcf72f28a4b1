# expect: ✘ partial batch
# A pre-allocated array filled for len // batch_size batches: the last 11 rows stay zero,
# and the L2 step turns them into NaN (0 / 0).
def to_input(path):
    img = Image.open(path).convert("RGB").resize((SIZE, SIZE), RESAMPLE)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def extract(net, split, batch_size=16):
    net.eval()
    n = len(split.paths)
    with torch.no_grad():
        X = np.zeros((n, net(to_input(split.paths[0])[None]).shape[1]), dtype=np.float32)
        for b in range(n // batch_size):
            paths = split.paths[b * batch_size:(b + 1) * batch_size]
            X[b * batch_size:(b + 1) * batch_size] = net(torch.stack([to_input(p) for p in paths])).numpy()
    with np.errstate(invalid="ignore"):
        return X / np.linalg.norm(X, axis=1, keepdims=True), split.labels


X_train, y_train = extract(net, small.train)
X_test, y_test = extract(net, small.test)
