# expect: ✘ no normalisation
def preprocess(img):
    img = img.resize((SIZE, SIZE), RESAMPLE)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)

x = preprocess(photos["chelsea"])
print(tuple(x.shape), x.dtype)
