# expect: ✔
# All in NumPy (channels last), then one transpose into a tensor.
def preprocess(img):
    a = np.array(img.resize((SIZE, SIZE), RESAMPLE)).astype(np.float32) / 255.0
    a = (a - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    return torch.tensor(a.transpose(2, 0, 1))

x = preprocess(photos["chelsea"])
print(tuple(x.shape), x.dtype)
