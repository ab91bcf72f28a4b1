# expect: ✘ not L2-normalised
# The network's rows as they come: the L2 step forgotten.
def to_input(path):
    img = Image.open(path).convert("RGB").resize((SIZE, SIZE), RESAMPLE)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def extract(net, split, batch_size=16):
    net.eval()
    rows = []
    with torch.no_grad():
        for i in range(0, len(split.paths), batch_size):
            rows.append(net(torch.stack([to_input(p) for p in split.paths[i:i + batch_size]])).numpy())
    return np.concatenate(rows), split.labels


X_train, y_train = extract(net, small.train)
X_test, y_test = extract(net, small.test)
