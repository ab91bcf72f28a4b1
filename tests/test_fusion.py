"""BatchNorm folding: same function as the original, on a copy, refused when unsafe."""
import numpy as np
import pytest
import torch
from torch import nn

from tplib.data import load_dataset
from tplib.engine import Engine
from tplib.features import LayerTap, extract_features
from tplib.fusion import _conv_bn_pairs, fold_batchnorm
from tplib.synthetic import generate_scene_standin

FP32 = Engine(precision="fp32", batch_size=8)  # exact arithmetic: "auto" may pick bf16


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = generate_scene_standin(tmp_path_factory.mktemp("gen") / "scenes", n_train=1, n_test=1)
    return load_dataset(root)


def _inputs(n=4, size=224, seed=1):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _taps(model, nodes, x):
    with torch.no_grad(), LayerTap(model.eval(), nodes, pool=None) as tap:
        return tap.run(x)


def _assert_close(a, b, rtol=1e-5):
    scale = a.abs().max().item()
    assert (a - b).abs().max().item() <= rtol * scale, (a - b).abs().max().item() / scale


def test_lite0_folded_copy_gives_every_layer_and_leaves_the_original_alone(lite0):
    before = {k: v.clone() for k, v in lite0.model.state_dict().items()}
    lite0.model.train()  # a student fine-tuning: the mode must survive too
    folded, n = fold_batchnorm(lite0.model, 224)
    assert n == 49  # stem + 16 blocks' convs + head, each followed by a BatchNorm
    assert folded is not lite0.model and lite0.model.training
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    after = lite0.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    lite0.model.eval()
    nodes = {layer: lite0.node(layer) for layer in lite0.layers}
    x = _inputs()
    ref, got = _taps(lite0.model, nodes, x), _taps(folded, nodes, x)
    for layer in nodes:  # stem and head are BatchNorm module names: still there
        _assert_close(ref[layer], got[layer])


def test_torchvision_resnet_with_real_statistics_folds_exactly():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18().eval()
    g = torch.Generator().manual_seed(0)
    for m in model.modules():  # non-trivial statistics, or folding would be a no-op
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    folded, n = fold_batchnorm(model, 96)
    assert n == 20  # 17 convs of the blocks and stem + 3 downsample convs
    x = _inputs(2, 96)
    with torch.no_grad():
        _assert_close(model(x), folded(x))


def test_vgg16_has_nothing_to_fold_and_is_not_copied(vgg_random):
    model, n = fold_batchnorm(vgg_random.model)
    assert n == 0 and model is vgg_random.model


class _ConvFeedsTwo(nn.Module):
    """The conv output goes to the BatchNorm *and* to a residual sum: folding is wrong."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_unsafe_fold_is_detected_and_refused():
    model = _ConvFeedsTwo().eval()
    model.bn.running_mean.fill_(0.5)
    model.bn.running_var.fill_(4.0)
    same, n = fold_batchnorm(model, 32)
    assert n == 0 and same is model


def test_global_random_state_is_not_touched(lite0):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fold_batchnorm(lite0.model, 224)
    assert torch.equal(torch.rand(3), expected)


def test_extraction_with_and_without_folding_agree_and_cache_apart(lite0, scenes):
    opts = dict(pool="avg", progress=False)
    layers = ["stem", "block4", "pooled"]
    folded = extract_features(lite0, scenes.train, layers, engine=FP32, **opts)
    plain = extract_features(lite0, scenes.train, layers, engine=FP32.replace(fold_bn=False), **opts)
    assert not folded.from_cache and not plain.from_cache  # different cache keys
    assert folded.cache_path != plain.cache_path
    assert folded.settings["fold_bn"] and not plain.settings["fold_bn"]
    for layer in layers:
        a, b = plain[layer], folded[layer]
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), layer
    again = extract_features(lite0, scenes.train, layers, engine=FP32, **opts)
    assert again.from_cache


def test_tapped_convs_keep_their_own_output_and_inner_names_survive(lite0, scenes):
    """A conv asked for by module name is not folded; bn1.act is still there to tap."""
    opts = dict(pool="avg", cache=False, progress=False)
    layers = ["conv_stem", "blocks.1.0.conv_pw", "bn1.act", "blocks.2.0.bn1.act", "pooled"]
    folded = extract_features(lite0, scenes.train, layers, engine=FP32, **opts)
    plain = extract_features(lite0, scenes.train, layers, engine=FP32.replace(fold_bn=False), **opts)
    for layer in layers:
        a, b = plain[layer], folded[layer]
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), layer
    _, n = fold_batchnorm(lite0.model, 224, keep=["conv_stem", "blocks.1.0.conv_pw"])
    assert n == 47


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False)),
    lambda: nn.Sequential(nn.BatchNorm2d(3, affine=False)),  # no parameters at all
])
def test_models_that_cannot_be_folded_are_returned_as_they_are(make):
    model = make().eval()
    same, n = fold_batchnorm(model, 16)
    assert n == 0 and same is model


def test_extraction_keeps_the_training_mode(lite0, scenes):
    lite0.model.train()
    try:
        extract_features(lite0, scenes.test, ["block2"], pool="max", cache=False, progress=False)
        assert lite0.model.training
    finally:
        lite0.model.eval()


def test_a_conv_changed_in_place_before_its_batchnorm_is_not_a_pair():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.BatchNorm2d(4)).eval()
    pairs, _ = _conv_bn_pairs(model, _inputs(1, 16))
    assert pairs == []
    direct = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True)).eval()
    assert _conv_bn_pairs(direct, _inputs(1, 16))[0] == [("0", "1")]
