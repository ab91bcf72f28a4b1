# expect: ✔
# torchvision transforms instead of the hand-written steps.
from torchvision import transforms as T


def preprocess(img):
    transform = T.Compose([
        T.Resize((SIZE, SIZE), interpolation=T.InterpolationMode.BICUBIC),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ])
    return transform(img)

x = preprocess(photos["chelsea"])
print(tuple(x.shape), x.dtype)
