# expect: ✘ integer
def preprocess(img):
    img = img.resize((SIZE, SIZE), RESAMPLE)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)

x = preprocess(photos["chelsea"])
print(tuple(x.shape), x.dtype)
