# expect: ✘ no channel
# averaged over the channels instead of over each map: the index of a pixel
maps = acts[first.activation]  # (C, H, W)
strongest = int(maps.mean(dim=0).argmax())
print("strongest channel:", strongest)
