# expect: ✘ ImageNet's mean and std
# VGG16's numbers typed in by heart, not this network's MEAN and STD.
def to_input(path):
    img = Image.open(path).convert("RGB").resize((SIZE, SIZE), RESAMPLE)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return (x - mean) / std


def extract(net, split, batch_size=16):
    net.eval()
    rows = []
    with torch.no_grad():
        for i in range(0, len(split.paths), batch_size):
            rows.append(net(torch.stack([to_input(p) for p in split.paths[i:i + batch_size]])).numpy())
    X = np.concatenate(rows)
    return X / np.linalg.norm(X, axis=1, keepdims=True), split.labels


X_train, y_train = extract(net, small.train)
X_test, y_test = extract(net, small.test)
