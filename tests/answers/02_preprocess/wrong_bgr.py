# expect: ✘ BGR
# OpenCV habit: channels reversed
def preprocess(img):
    img = img.resize((SIZE, SIZE), RESAMPLE)
    a = np.asarray(img, dtype=np.float32)[:, :, ::-1] / 255
    x = torch.from_numpy(a.copy()).permute(2, 0, 1)
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)

x = preprocess(photos["chelsea"])
print(tuple(x.shape), x.dtype)
