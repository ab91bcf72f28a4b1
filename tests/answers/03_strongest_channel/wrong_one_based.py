# expect: ✘ largest mean
# counted from 1, as a person would
maps = acts[first.activation]  # (C, H, W)
strongest = int(maps.mean(dim=(1, 2)).argmax()) + 1
print("strongest channel:", strongest)
