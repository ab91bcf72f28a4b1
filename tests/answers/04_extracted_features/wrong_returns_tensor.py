# expect: ✘ torch tensor
# Rows right, but kept as a torch tensor.
def to_input(path):
    img = Image.open(path).convert("RGB").resize((SIZE, SIZE), RESAMPLE)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def extract(net, split, batch_size=16):
    net.eval()
    with torch.no_grad():
        X = torch.cat([net(torch.stack([to_input(p) for p in split.paths[i:i + batch_size]]))
                       for i in range(0, len(split.paths), batch_size)])
    return torch.nn.functional.normalize(X, dim=1), torch.as_tensor(split.labels)


X_train, y_train = extract(net, small.train)
X_test, y_test = extract(net, small.test)
