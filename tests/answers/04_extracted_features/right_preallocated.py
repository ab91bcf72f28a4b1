# expect: ✔
# A pre-allocated array, filled batch by batch, the last partial batch included.
def to_input(path):
    img = Image.open(path).convert("RGB").resize((SIZE, SIZE), RESAMPLE)
    a = (np.asarray(img, dtype=np.float32) / 255 - np.array(MEAN, dtype=np.float32)) / np.array(
        STD, dtype=np.float32)
    return torch.from_numpy(a.transpose(2, 0, 1).copy())


def extract(net, split, batch_size=16):
    net.eval()
    n = len(split.paths)
    X = None
    with torch.no_grad():
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            out = net(torch.stack([to_input(p) for p in split.paths[start:stop]])).numpy()
            if X is None:
                X = np.zeros((n, out.shape[1]), dtype=np.float32)
            X[start:stop] = out
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, split.labels.copy()


X_train, y_train = extract(net, small.train)
X_test, y_test = extract(net, small.test)
