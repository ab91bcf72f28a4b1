# expect: ✘ resized as a tensor
# ToTensor first, then Resize on the tensor: torch's resize, not Pillow's.
from torchvision import transforms as T

transform = T.Compose([T.ToTensor(),
                       T.Resize((SIZE, SIZE), interpolation=T.InterpolationMode(prep.interpolation)),
                       T.Normalize(MEAN, STD)])


def to_input(path):
    return transform(Image.open(path).convert("RGB"))


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
