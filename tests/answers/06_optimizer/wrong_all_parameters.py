# expect: ✘ frozen
model = attach_head(lab.backbone, K, loss="bce")  # frozen base + a new one-logit head

optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
