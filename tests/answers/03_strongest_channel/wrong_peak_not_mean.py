# expect: ✘ largest single value
maps = acts[first.activation]  # (C, H, W)
strongest = int(maps.amax(dim=(1, 2)).argmax())
print("strongest channel:", strongest)
