# expect: ✔
maps = acts[first.activation]  # (C, H, W)
strongest = maps.flatten(1).mean(1).argmax().item()
print("strongest channel:", strongest)
