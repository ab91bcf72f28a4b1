# expect: ✘ not its activation value
maps = acts[first.activation]  # (C, H, W)
strongest = float(maps.mean(dim=(1, 2)).max())
print("strongest channel:", strongest)
