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


def test_one_image_alone_is_a_list_of_one_and_an_empty_list_gives_none(lite0):
    photo = Image.open(list(sample_photos().values())[1]).convert("RGB")
    one = predict_topk(lite0, photo, k=3)
    assert one == predict_topk(lite0, [photo], k=3) and len(one) == 1
    assert one[0][0][0] == "espresso"
    assert predict_topk(lite0, [], k=3) == [] and predict_topk(lite0, (), k=3) == []


@pytest.mark.parametrize("images", [
    "array", "tensor", "list of arrays", "number", "list of numbers", "batch tensor"])
def test_arrays_tensors_and_numbers_are_refused_in_one_line(lite0, images):
    import numpy as np

    from tplib.errors import InputError

    arr = np.zeros((32, 32, 3), dtype=np.uint8)
    value = {"array": arr, "tensor": torch.zeros(3, 32, 32), "list of arrays": [arr],
             "number": 5, "list of numbers": [5], "batch tensor": torch.zeros(2, 3, 32, 32)}[images]
    with pytest.raises(InputError, match=r"(images|images\[0\]) (must be|is) .*PIL.Image.fromarray") as err:
        predict_topk(lite0, value, k=3)
    assert "\n" not in str(err.value)
    if hasattr(value, "shape"):
        assert str(tuple(value.shape)) in str(err.value)


def test_a_20000x1_png_is_predicted_from_its_crop(lite0, tmp_path):
    """Before: the crop policy resized it to 5,120,000x256 pixels first (3.9 GB)."""
    import resource
    import time

    import numpy as np

    from tplib.predict import predict_files

    row = np.random.default_rng(0).integers(0, 256, (1, 20000, 3), dtype=np.uint8)
    path = tmp_path / "strip.png"
    Image.fromarray(row).save(path)
    assert path.stat().st_size < 70_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t0 = time.perf_counter()
    (name, top), = predict_files(lite0, [path], k=2)
    assert time.perf_counter() - t0 < 10
    assert name == str(path) and len(top) == 2 and 0 < top[0][1] <= 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # < 0.5 GB more
