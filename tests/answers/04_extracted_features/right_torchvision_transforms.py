# expect: ✔
# torchvision's transforms on the PIL image (Resize before ToTensor: Pillow's resize).
from torchvision import transforms as T

transform = T.Compose([
    T.Lambda(lambda img: img.convert("RGB")),
    T.Resize((SIZE, SIZE), interpolation=T.InterpolationMode(prep.interpolation)),
    T.ToTensor(),
    T.Normalize(MEAN, STD),
])


def extract(net, split, batch_size=32):
    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(split.paths), batch_size):
            x = torch.stack([transform(Image.open(p)) for p in split.paths[i:i + batch_size]])
            out.append(net(x))
    X = torch.cat(out)
    X = X / X.norm(dim=1, keepdim=True)
    return X.numpy(), split.labels


X_train, y_train = extract(net, small.train)
X_test, y_test = extract(net, small.test)
