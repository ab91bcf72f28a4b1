# expect: ✘ not this model's
# the head of another copy of the model
model = attach_head(lab.backbone, K, loss="bce")  # frozen base + a new one-logit head

optimizer = torch.optim.Adam(attach_head(lab.backbone, K, loss="bce").head.parameters(), lr=3e-3)
