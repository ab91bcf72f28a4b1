"""ImageNet top-k against each network's own evaluation transform + softmax; layer tables."""
import pytest
import torch
from PIL import Image
from torchvision.models import get_weight

from tplib.predict import layer_table, predict_topk
from tplib.samples import sample_photos


def _reference_topk(model, x, categories, k):
    with torch.no_grad():
        probs = torch.softmax(model.eval()(x), dim=1)
    p, i = probs.topk(k, dim=1)
    return [[(categories[j], float(q)) for q, j in zip(ps, js)] for ps, js in zip(p.tolist(), i.tolist())]


def _assert_same(ours, ref):
    for a, b in zip(ours, ref):
        assert [name for name, _ in a] == [name for name, _ in b]
        assert [p for _, p in a] == pytest.approx([p for _, p in b], abs=1e-5)


def test_vgg16_topk_equals_weights_transforms_and_softmax(vgg_random):
    photos = [Image.open(p).convert("RGB") for p in list(sample_photos().values())[:3]]
    transform = get_weight("VGG16_Weights.IMAGENET1K_V1").transforms()
    x = torch.stack([transform(img) for img in photos])
    ours = predict_topk(vgg_random, photos, k=5)
    _assert_same(ours, _reference_topk(vgg_random.model, x, vgg_random.categories, 5))
    assert all(len(top) == 5 and top[0][1] >= top[-1][1] for top in ours)


def test_lite0_topk_equals_timms_transform_and_softmax(lite0):
    from timm.data import create_transform, resolve_data_config

    photos = [Image.open(p).convert("RGB") for p in sample_photos().values()]
    transform = create_transform(**resolve_data_config({}, model=lite0.model))
    x = torch.stack([transform(img) for img in photos])
    ours = predict_topk(lite0, photos, k=3)
    _assert_same(ours, _reference_topk(lite0.model, x, lite0.categories, 3))
    assert ours[1][0][0] == "espresso"  # coffee.jpg: real weights, a real answer


def test_layer_table_counts_the_parameters_of_each_layer(vgg_random):
    rows = {r.layer: r for r in layer_table(vgg_random)}
    assert rows["conv1_1"].params == 3 * 64 * 9 + 64 and rows["conv1_1"].kind == "Conv2d"
    assert rows["fc6"].params == 25088 * 4096 + 4096 and rows["fc6"].shape == (4096,)
    assert rows["pool5"].shape == (512, 7, 7) and rows["pool5"].params == 0
    assert sum(r.params for r in rows.values()) == sum(p.numel() for p in vgg_random.model.parameters())


def test_topk_takes_paths_and_refuses_an_impossible_k(lite0):
    from tplib.errors import OptionError

    paths = list(sample_photos().values())[:2]
    photos = [Image.open(p).convert("RGB") for p in paths]
    assert predict_topk(lite0, paths, k=2) == predict_topk(lite0, photos, k=2)
    assert predict_topk(lite0, str(paths[0]), k=1) == predict_topk(lite0, photos[:1], k=1)
    for k in (0, 1001, 2.5, True):
        with pytest.raises(OptionError, match="from 1 to 1000"):
            predict_topk(lite0, photos, k=k)
