# expect: ✘ not this model's
# a new layer made beside the model, never attached to it
model = attach_head(lab.backbone, K, loss="bce")  # frozen base + a new one-logit head

head = nn.Linear(1280, 1)
optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
