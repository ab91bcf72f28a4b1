# expect: ✘ not normalised
# ToTensor only: values in [0, 1], no mean or std.
from torchvision import transforms as T

to_tensor = T.Compose([T.Resize((SIZE, SIZE), interpolation=T.InterpolationMode(prep.interpolation)),
                       T.ToTensor()])


def extract(net, split, batch_size=16):
    net.eval()
    rows = []
    with torch.no_grad():
        for i in range(0, len(split.paths), batch_size):
            x = torch.stack([to_tensor(Image.open(p).convert("RGB")) for p in split.paths[i:i + batch_size]])
            rows.append(net(x).numpy())
    X = np.concatenate(rows)
    return X / np.linalg.norm(X, axis=1, keepdims=True), split.labels


X_train, y_train = extract(net, small.train)
X_test, y_test = extract(net, small.test)
