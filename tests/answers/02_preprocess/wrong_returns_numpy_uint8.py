# expect: ✘ channels last
# returns the resized picture as a NumPy array, nothing else done
def preprocess(img):
    return np.asarray(img.resize((SIZE, SIZE), RESAMPLE))

x = preprocess(photos["chelsea"])
print(tuple(x.shape), x.dtype)
