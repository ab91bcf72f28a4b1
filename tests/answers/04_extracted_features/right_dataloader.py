# expect: ✔
# A torch Dataset and a DataLoader (shuffle=False), the labels from the loader, L2 in torch.
from torch.utils.data import DataLoader, Dataset


class Images(Dataset):
    def __init__(self, split):
        self.paths, self.labels = split.paths, split.labels

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        img = Image.open(self.paths[i]).convert("RGB").resize((SIZE, SIZE), RESAMPLE)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
        x = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
        return x, int(self.labels[i])


def extract(net, split, batch_size=16):
    net.eval()
    rows, labels = [], []
    with torch.no_grad():
        for x, y in DataLoader(Images(split), batch_size=batch_size, shuffle=False):
            rows.append(torch.nn.functional.normalize(net(x), dim=1))
            labels.append(y)
    return torch.cat(rows).numpy(), torch.cat(labels).numpy()


X_train, y_train = extract(net, small.train)
X_test, y_test = extract(net, small.test)
