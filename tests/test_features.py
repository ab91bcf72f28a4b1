"""Extraction: many layers in one pass, pooling, the feature cache, interruption, precision."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from oddimages import make_odd_images
from PIL import Image

from tplib.data import load_dataset
from tplib.engine import Engine, resolve_threads
from tplib.errors import MemoryBudgetError
from tplib.features import activations, extract_features, pool_output
from tplib.synthetic import generate_scene_standin

# exact float32 arithmetic: "auto" may pick bf16 on CPUs that have it
FP32 = Engine(precision="fp32")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Generated 15-Scene-like images: 2 train + 1 test per class (45 files)."""
    root = generate_scene_standin(tmp_path_factory.mktemp("gen") / "scenes", n_train=2, n_test=1)
    return load_dataset(root)


def test_many_layers_in_one_pass_equal_single_layer_runs(lite0, scenes):
    layers = ["block2", "block5", "head", "pooled"]
    opts = dict(pool="avg", cache=False, progress=False, engine=FP32.replace(batch_size=8))
    together = extract_features(lite0, scenes.train, layers, **opts)
    for layer in layers:
        alone = extract_features(lite0, scenes.train, layer, **opts)
        np.testing.assert_allclose(together[layer], alone[layer], rtol=1e-5, atol=1e-6)
    # "head" averaged over space is exactly what the network pools into "pooled"
    np.testing.assert_allclose(together["head"], together["pooled"], rtol=1e-5, atol=1e-6)


def test_pooled_shapes_and_values(vgg_random, scenes):
    split = scenes.test.subset(1)
    split.paths, split.labels = split.paths[:3], split.labels[:3]
    layers = ["relu1_1", "pool3", "relu5_3", "relu7"]
    shapes = {"avg": [64, 256, 512, 4096], "max": [64, 256, 512, 4096],
              "pyramid": [320, 1280, 2560, 4096]}
    from torchvision.models.feature_extraction import create_feature_extractor

    from tplib.images import load_image

    # reference: torchvision's own feature extractor on the same preprocessed images
    nodes = {vgg_random.node(layer): layer for layer in [*layers, "pool5"]}
    extractor = create_feature_extractor(vgg_random.model.eval(), return_nodes=nodes)
    x = torch.stack([vgg_random.preprocess(load_image(p)) for p in split.paths])
    with torch.no_grad():
        ref = {k: v.float() for k, v in extractor(x).items()}
    reduce = {"avg": lambda t: t.mean(dim=(2, 3)), "max": lambda t: t.amax(dim=(2, 3))}
    for pool, dims in shapes.items():
        f = extract_features(vgg_random, split, layers, pool=pool, cache=False, progress=False,
                             engine=FP32)
        assert [f[layer].shape for layer in layers] == [(3, d) for d in dims]
        for layer in layers:
            want = ref[layer] if ref[layer].ndim == 2 else (
                reduce[pool](ref[layer]) if pool in reduce else None)
            if want is not None:
                np.testing.assert_allclose(f[layer], want.numpy(), rtol=1e-4, atol=1e-5)
    raw = extract_features(vgg_random, split, ["pool5"], pool="none", cache=False, progress=False,
                           engine=FP32)
    assert raw["pool5"].shape == (3, 512 * 7 * 7)
    np.testing.assert_allclose(raw["pool5"], ref["pool5"].flatten(1).numpy(), rtol=1e-4, atol=1e-5)


def test_pool_output_definitions():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    assert torch.equal(pool_output(x, "avg"), x.mean(dim=(2, 3)))
    assert torch.equal(pool_output(x, "max"), x.amax(dim=(2, 3)))
    pyr = pool_output(x, "pyramid")
    assert pyr.shape == (2, 15)
    assert torch.allclose(pyr[:, 3:].reshape(2, 3, 4).mean(-1), x.mean(dim=(2, 3)))
    assert pool_output(x, "none").shape == (2, 48)


def test_in_place_relu_does_not_overwrite_captured_linear_output(vgg_random, scenes):
    """fc7 and relu7 in one pass: fc7 must keep its negative values."""
    paths = scenes.test.paths[:2]
    f = extract_features(vgg_random, paths, ["fc7", "relu7"], cache=False, progress=False)
    assert (f["fc7"] < 0).any()
    np.testing.assert_allclose(np.maximum(f["fc7"], 0), f["relu7"], rtol=1e-5, atol=1e-6)
    maps = activations(vgg_random, paths[0], ["conv1_1", "relu1_1"])
    assert maps["conv1_1"].shape == (64, 224, 224) and (maps["conv1_1"] < 0).any()
    assert torch.allclose(maps["conv1_1"].clamp(min=0), maps["relu1_1"])


def test_cache_hit_and_invalidation(lite0, scenes, tmp_path):
    from tplib.cache import cache_info

    split = scenes.train
    first = extract_features(lite0, split, "pooled", progress=False)
    assert not first.from_cache and first.cache_path is not None
    second = extract_features(lite0, split, "pooled", progress=False)
    assert second.from_cache and second.cache_path == first.cache_path
    np.testing.assert_array_equal(first["pooled"], second["pooled"])
    assert [e["state"] for e in cache_info()] == ["complete"]
    # another pooling, layer or precision is another entry
    assert not extract_features(lite0, split, "head", pool="avg", progress=False).from_cache
    # a changed image file (content and mtime) is never served from the cache
    target = split.paths[3]
    from PIL import Image

    Image.new("L", (240, 200), 255).save(target)
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    third = extract_features(lite0, split, "pooled", progress=False)
    assert not third.from_cache
    assert not np.allclose(third["pooled"][3], first["pooled"][3])
    np.testing.assert_allclose(third["pooled"][:3], first["pooled"][:3], rtol=1e-6)


def test_undecodable_images_are_skipped_and_listed_never_zero_rows(lite0, scenes, tmp_path):
    expected = make_odd_images(tmp_path / "odd")
    paths = [tmp_path / "odd" / n for n in sorted(expected)] + list(scenes.test.paths[:5])
    f = extract_features(lite0, paths, "pooled", engine=Engine(batch_size=4), cache=True, progress=False)
    n_bad = sum(not v for v in expected.values())
    assert len(f.skipped) == n_bad and len(f.paths) == len(paths) - n_bad
    assert f["pooled"].shape == (len(paths) - n_bad, 1280)
    assert (np.abs(f["pooled"]).sum(axis=1) > 0).all()
    assert {os.path.basename(p) for p, _ in f.skipped} == {n for n, v in expected.items() if not v}
    again = extract_features(lite0, paths, "pooled", engine=Engine(batch_size=4), cache=True,
                             progress=False)
    assert again.from_cache and again.skipped == f.skipped
    np.testing.assert_array_equal(again["pooled"], f["pooled"])


def test_unpooled_shallow_layer_is_refused_before_allocating(vgg_random, scenes):
    with pytest.raises(MemoryBudgetError) as err:
        extract_features(vgg_random, scenes.train.paths * 100, "relu1_1", pool="none",
                         progress=False, engine=Engine(max_bytes=2 * 10**9))
    msg = str(err.value)
    assert "3,211,264 values" in msg and "pool='avg'" in msg and "GB" in msg


def test_float16_storage(lite0, scenes):
    f32 = extract_features(lite0, scenes.test, "pooled", cache=False, progress=False, engine=FP32)
    f16 = extract_features(lite0, scenes.test, "pooled", cache=False, progress=False,
                           engine=FP32.replace(dtype="float16"))
    assert f16["pooled"].dtype == np.float16
    np.testing.assert_allclose(f16["pooled"].astype(np.float32), f32["pooled"], rtol=2e-3, atol=1e-3)


# bf16 keeps 8 bits of mantissa. Through EfficientNet-Lite0's 49 batch-norm layers
# the pooled features move by 2-12% (relative L2 per row, measured here); their
# direction barely changes (cosine > 0.995), which is what an L2-normalised linear
# classifier sees (SVM accuracy: benchmarks/extraction.py --accuracy).
BF16_MAX_REL_ERROR = 0.15


def test_bf16_agrees_with_fp32_within_tolerance(lite0, scenes):
    paths = scenes.test.paths[:8]
    a = extract_features(lite0, paths, "pooled", engine=FP32, cache=False, progress=False)["pooled"]
    b = extract_features(lite0, paths, "pooled", engine=Engine(precision="bf16"), cache=False,
                         progress=False)["pooled"]
    rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
    assert rel.max() < BF16_MAX_REL_ERROR
    assert rel.max() > 0  # it really ran in bf16
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import tplib.features as features
    from tplib.data import load_dataset
    from tplib.engine import Engine
    from tplib.models import load_backbone

    decode = features._decode_batch

    def slow_decode(*args, **kwargs):  # a slow disk: the kill lands mid-extraction on any CPU
        time.sleep(0.3)
        return decode(*args, **kwargs)

    features._decode_batch = slow_decode
    ds = load_dataset(sys.argv[1])
    features.extract_features(load_backbone("efficientnet_lite0"), ds.train, "pooled",
                              engine=Engine(batch_size=2, precision="fp32", threads=0),
                              progress=False)
""")


def _done(progress_file) -> int:
    import json

    try:
        return json.loads(progress_file.read_text())["done"]
    except (OSError, ValueError, KeyError):
        return -1


def test_killed_extraction_leaves_no_entry_and_resumes(lite0, scenes, tmp_path, caplog):
    from tplib.paths import feature_cache_dir

    n = len(scenes.train)
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(scenes.root)], env=os.environ)
    progress = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        found = list(feature_cache_dir().glob("*.partial/progress.json"))
        if found and 2 <= _done(found[0]) < n:
            progress = found[0]
            break
        time.sleep(0.05)
    assert progress is not None and proc.poll() is None, "extraction did not start in time"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    entries = [p for p in feature_cache_dir().iterdir() if p.is_dir()]
    assert all(p.name.endswith(".partial") for p in entries)  # no finished-looking entry
    resumed = extract_features(lite0, scenes.train, "pooled",
                               engine=FP32.replace(batch_size=2, threads=0), progress=False)
    assert "Resuming an interrupted extraction" in caplog.text  # logged on "tplib"
    assert not resumed.from_cache and 0 < resumed.n_computed < n
    fresh = extract_features(lite0, scenes.train, "pooled", engine=FP32.replace(batch_size=2),
                             cache=False, progress=False)
    np.testing.assert_allclose(resumed["pooled"], fresh["pooled"], rtol=1e-5, atol=1e-6)
    assert extract_features(lite0, scenes.train, "pooled", engine=FP32.replace(batch_size=2),
                            progress=False).from_cache


def test_decoding_between_batches_or_in_threads_gives_the_same_rows(lite0, scenes):
    opts = dict(pool="avg", cache=False, progress=False)
    serial = extract_features(lite0, scenes.test, "block3", engine=FP32.replace(batch_size=4, threads=0),
                              **opts)
    threaded = extract_features(lite0, scenes.test, "block3",
                                engine=FP32.replace(batch_size=4, threads=2), **opts)
    assert serial.settings["decode_threads"] == 0 and threaded.settings["decode_threads"] == 2
    assert serial.paths == threaded.paths
    np.testing.assert_array_equal(serial["block3"], threaded["block3"])


def test_decode_threads_default_to_spare_cores(monkeypatch):
    import tplib.engine as tf

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_threads(3, cpu) == 3 and resolve_threads(0, cuda) == 0
    with pytest.raises(ValueError, match="threads"):
        resolve_threads(-1, cpu)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(tf, "usable_cores", lambda: 2)
    assert resolve_threads(None, cpu) == 0  # both cores run the network
    assert resolve_threads(None, cuda) == 2  # the GPU does: decode ahead
    monkeypatch.setattr(tf, "usable_cores", lambda: 16)
    assert resolve_threads(None, cpu) == 2


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc")
def test_cache_files_are_never_left_mapped_in_memory(lite0, scenes):
    """Rows go to the cache with plain writes and come back as ordinary arrays."""
    from tplib.paths import feature_cache_dir

    first = extract_features(lite0, scenes.test, ["block6", "pooled"], pool="avg", progress=False)
    hit = extract_features(lite0, scenes.test, ["block6", "pooled"], pool="avg", progress=False)
    assert not first.from_cache and hit.from_cache
    import mmap

    def mapped(a):
        while a is not None:
            if isinstance(a, (np.memmap, mmap.mmap)):
                return True
            a = getattr(a, "base", None)
        return False

    for feats in (first, hit):
        assert not any(mapped(a) for a in feats.arrays.values())
    np.testing.assert_array_equal(first["pooled"], hit["pooled"])
    cache_dir = str(feature_cache_dir().resolve())
    with open("/proc/self/maps") as maps:
        assert not [line for line in maps if cache_dir in line]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
def test_a_cache_writer_that_fails_to_open_closes_what_it_opened(monkeypatch):
    import tplib.cache as tc

    real, opened = tc._RowFile, []

    def flaky(*args, **kwargs):
        if len(opened) == 2:
            raise OSError(28, "No space left on device")
        opened.append(real(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(tc, "_RowFile", flaky)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match="No space"):
        tc.DiskWriter("k-test", {"a": 3, "b": 4, "c": 5}, 10, np.dtype("float32"))
    assert len(opened) == 2 and all(f.fd is None for f in opened)
    assert len(os.listdir("/proc/self/fd")) == before


def test_one_path_is_one_image_never_its_characters(lite0, scenes):
    one = str(scenes.test.paths[0])
    f = extract_features(lite0, one, "pooled", cache=False, progress=False, engine=FP32)
    assert f["pooled"].shape == (1, 1280) and f.paths == [one]
    listed = extract_features(lite0, [one], "pooled", cache=False, progress=False, engine=FP32)
    np.testing.assert_array_equal(f["pooled"], listed["pooled"])
    from tplib.errors import DataError

    with pytest.raises(DataError, match="is a folder"):
        extract_features(lite0, str(scenes.root), "pooled", cache=False, progress=False)


def test_features_behave_like_a_mapping_of_layers():
    from tplib.errors import TplibError
    from tplib.features import Features

    a, b = np.ones((3, 4), np.float32), np.zeros((3, 2), np.float32)
    feats = Features(arrays={"relu6": a, "relu7": b}, labels=np.array([0, 1, 1]), paths=["x", "y", "z"])
    assert "relu7" in feats and "fc8" not in feats and 0 not in feats
    assert list(feats) == list(feats.keys()) == ["relu6", "relu7"] and len(feats) == 2
    assert dict(feats.items())["relu6"] is a and feats["relu7"] is b
    with pytest.raises(TplibError, match="no features for layer 'fc8': these hold relu6, relu7"):
        feats["fc8"]


def test_calls_that_would_return_no_rows_are_refused_before_any_work(vgg_random, tmp_path, monkeypatch):
    from tplib.data import load_dataset
    from tplib.errors import DataError, OptionError

    with pytest.raises(OptionError, match="'relu7' and 'classifier.4' are the same module"):
        extract_features(vgg_random, [tmp_path / "x.jpg"], ["relu7", "classifier.4"])
    with pytest.raises(DataError, match="none of the 2 image files exists"):
        extract_features(vgg_random, [tmp_path / "a.jpg", tmp_path / "b.jpg"], "relu7")
    for _ in range(2):  # computed, then read from the cache
        empty = extract_features(vgg_random, [], "relu7", engine=FP32)  # e.g. no validation photos
        assert empty["relu7"].shape == (0, 4096) and not empty.skipped
    with pytest.raises(OptionError, match="layers is empty"):
        extract_features(vgg_random, [tmp_path / "x.jpg"], [])
    # a dataset loaded from a relative folder keeps working after a change of folder
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / "d" / split / cls).mkdir(parents=True)
            Image.new("L", (8, 8), 50).save(tmp_path / "d" / split / cls / "1.jpg")
    monkeypatch.chdir(tmp_path)
    data = load_dataset("d")
    monkeypatch.chdir("/")
    assert all(Path(p).is_absolute() and Path(p).exists() for p in data.train.paths)
    with pytest.raises(DataError, match="empty text"):
        load_dataset("  ")


@pytest.mark.parametrize("kwargs", [dict(batch_size=True), dict(batch_size=0), dict(batch_size=2.0),
                                    dict(threads=False), dict(threads=-1)])
def test_engine_refuses_what_is_not_a_count(kwargs):
    from tplib.errors import OptionError

    with pytest.raises(OptionError, match="batch size must be a whole number|threads must be 0 or more"):
        Engine(**kwargs)
    assert Engine(batch_size=np.int64(8), threads=np.int32(0)).batch_size == 8


@pytest.mark.parametrize("layers, needle", [
    (5, r"^layers must be a layer name or a list of names \(e.g. 'relu7' or \['relu7'\]\), not 5$"),
    ([], r"^layers is empty: give one or more layer names"),
    (["relu7", 5], r"^layers must be layer names \(e.g. 'relu7' or \['relu7'\]\), not 5$"),
    (("relu7", None), r"not None$")])
def test_layers_that_are_not_names_are_refused_before_any_work(vgg_random, tmp_path, monkeypatch, layers,
                                                               needle):
    import tplib.features as tf
    from tplib.errors import OptionError

    monkeypatch.setattr(tf, "probe_layers", lambda *a: pytest.fail("work started"))
    with pytest.raises(OptionError, match=needle):
        extract_features(vgg_random, [tmp_path / "x.jpg"], layers)
    with pytest.raises(OptionError, match=needle):
        activations(vgg_random, Image.new("RGB", (32, 32)), layers)
    assert tf.layer_list(vgg_random, None) == ["relu7"] == tf.layer_list(vgg_random, "relu7")
    assert tf.layer_list(vgg_random, ("relu6", "relu7")) == ["relu6", "relu7"]
