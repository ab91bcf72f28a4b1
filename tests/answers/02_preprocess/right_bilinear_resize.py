# expect: ✔
# Another interpolation than the weights use: only resize details differ.
def preprocess(img):
    img = img.resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]

x = preprocess(photos["chelsea"])
print(tuple(x.shape), x.dtype)
