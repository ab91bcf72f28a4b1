# expect: ✘ weakest
maps = acts[first.activation]  # (C, H, W)
strongest = int(maps.mean(dim=(1, 2)).argmin())
print("strongest channel:", strongest)
