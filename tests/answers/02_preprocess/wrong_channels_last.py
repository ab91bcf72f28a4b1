# expect: ✘ channels last
def preprocess(img):
    img = img.resize((SIZE, SIZE), RESAMPLE)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255)
    return (x - torch.tensor(MEAN)) / torch.tensor(STD)

x = preprocess(photos["chelsea"])
print(tuple(x.shape), x.dtype)
