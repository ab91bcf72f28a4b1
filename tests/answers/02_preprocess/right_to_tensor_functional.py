# expect: ✔
# torchvision.transforms.functional for the conversion, the arithmetic by hand.
import torchvision.transforms.functional as TF


def preprocess(img):
    x = TF.to_tensor(img.resize((SIZE, SIZE), RESAMPLE))
    return TF.normalize(x, MEAN, STD)

x = preprocess(photos["chelsea"])
print(tuple(x.shape), x.dtype)
