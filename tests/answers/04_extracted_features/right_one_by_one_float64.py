# expect: ✔ float64
# timeout: 300
# One image per forward pass, rows kept as float64 and normalised with scikit-learn: harmless.
from sklearn.preprocessing import normalize


def features(path):
    img = Image.open(path).convert("RGB").resize((SIZE, SIZE), RESAMPLE)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    x = (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    with torch.no_grad():
        return net(x.unsqueeze(0))[0].double().numpy()


net.eval()
X_train = normalize(np.stack([features(p) for p in small.train.paths]))
y_train = list(small.train.labels)
X_test = normalize(np.stack([features(p) for p in small.test.paths]))
y_test = list(small.test.labels)
