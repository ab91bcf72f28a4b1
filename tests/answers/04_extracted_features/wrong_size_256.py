# expect: ✘ 256x256
# Resized to 256x256 (the size before the crop in torchvision's transform).
def to_input(path):
    img = Image.open(path).convert("RGB").resize((256, 256), RESAMPLE)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


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
