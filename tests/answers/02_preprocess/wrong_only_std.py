# expect: ✘ only divided by the std
def preprocess(img):
    img = img.resize((SIZE, SIZE), RESAMPLE)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    return x / torch.tensor(STD).view(3, 1, 1)

x = preprocess(photos["chelsea"])
print(tuple(x.shape), x.dtype)
