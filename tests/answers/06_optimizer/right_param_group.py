# expect: ✔
# AdamW with an explicit parameter group.
model = attach_head(lab.backbone, K, loss="bce")  # frozen base + a new one-logit head

optimizer = torch.optim.AdamW([{"params": [p for p in model.parameters() if p.requires_grad],
                                "weight_decay": 1e-4}], lr=1e-3)
