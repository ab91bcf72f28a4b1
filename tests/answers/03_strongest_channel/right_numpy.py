# expect: ✔
maps = acts[first.activation]  # (C, H, W)
import numpy as np

strongest = int(np.argmax(maps.numpy().mean(axis=(1, 2))))
print("strongest channel:", strongest)
