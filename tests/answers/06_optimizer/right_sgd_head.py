# expect: ✔
model = attach_head(lab.backbone, K, loss="bce")  # frozen base + a new one-logit head

optimizer = torch.optim.SGD(model.head.parameters(), lr=0.01, momentum=0.9)
