# expect: ✘ frozen
# the base (frozen) given instead of the head
model = attach_head(lab.backbone, K, loss="bce")  # frozen base + a new one-logit head

optimizer = torch.optim.Adam(model.base.parameters(), lr=3e-3)
