# expect: ✘ missing
# the first trainable tensor (the weight), the bias forgotten
model = attach_head(lab.backbone, K, loss="bce")  # frozen base + a new one-logit head

optimizer = torch.optim.Adam([next(p for p in model.parameters() if p.requires_grad)], lr=3e-3)
