# expect: ✘ as an int
maps = acts[first.activation]  # (C, H, W)
strongest = maps.mean(dim=(1, 2))
print("strongest channel:", strongest)
