# expect: ✔
# The sum over a map ranks the channels like its mean (every map has H x W values).
maps = acts[first.activation]  # (C, H, W)
strongest = int(maps.sum(dim=(1, 2)).argmax())
print("strongest channel:", strongest)
