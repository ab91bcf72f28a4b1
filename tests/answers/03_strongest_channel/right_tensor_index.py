# expect: ✔
# A 0-d tensor holding the index: an int-like answer.
maps = acts[first.activation]  # (C, H, W)
strongest = maps.mean(dim=(1, 2)).argmax()
print("strongest channel:", strongest)
