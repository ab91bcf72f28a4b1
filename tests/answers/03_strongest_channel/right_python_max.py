# expect: ✔
maps = acts[first.activation]  # (C, H, W)
strongest = max(range(maps.shape[0]), key=lambda c: maps[c].mean().item())
print("strongest channel:", strongest)
