# expect: ✘ shorter side
# timeout: 300
# T.Resize(SIZE) with one number resizes the shorter side only: images of several shapes,
# so one image per batch.
from torchvision import transforms as T

transform = T.Compose([T.Resize(SIZE, interpolation=T.InterpolationMode(prep.interpolation)),
                       T.ToTensor(), T.Normalize(MEAN, STD)])


def extract(net, split):
    net.eval()
    with torch.no_grad():
        X = np.concatenate([net(transform(Image.open(p).convert("RGB"))[None]).numpy()
                            for p in split.paths])
    return X / np.linalg.norm(X, axis=1, keepdims=True), split.labels


X_train, y_train = extract(net, small.train)
X_test, y_test = extract(net, small.test)
