# expect: ✘ wrong size
# resized to 256 (the usual first step before a centre crop), never cropped
def preprocess(img):
    img = img.resize((256, 256), RESAMPLE)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)

x = preprocess(photos["chelsea"])
print(tuple(x.shape), x.dtype)
