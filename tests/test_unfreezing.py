"""tplib.finetune.unfreezing: the frozen base against its last blocks trained too, on
stored views (notebook 06, section 6).

The shortcut must compute what end-to-end training computes: the same logits and the
same gradients for the trainable blocks, from the stored input of the first trainable
block as from the photos. The real comparison runs in notebook 06 under nbval (15
Scene, the ci subset); here the equivalence, the bookkeeping and the refusals.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tplib.data import load_dataset
from tplib.errors import OptionError
from tplib.finetune import attach_head, store_views, unfreezing_comparison
from tplib.finetune import unfreezing as unfreezing_module
from tplib.finetune.models import input_of
from tplib.finetune.unfreezing import ResumeAt, UnfreezeComparison, UnfreezeRun, make_view

LITE0_START = "blocks.6"  # EfficientNet-Lite0: block7, the first of its last two blocks


@pytest.fixture(scope="module")
def photos():
    """4 normalised 224 px inputs (seeded noise with structure: not constant)."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 3, 224, 224, generator=g).clamp(-1, 1)


def test_resuming_from_the_stored_input_gives_the_models_logits_and_gradients(lite0, photos):
    model = attach_head(lite0, 3, freeze=2)
    y = torch.tensor([0, 1, 2, 1])
    model.train()
    end_to_end = model(photos)
    torch.nn.functional.cross_entropy(end_to_end, y).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("base.blocks.6") for n in grads)  # block7 trains
    assert any(n.startswith("base.conv_head") for n in grads)  # head block trains
    model.zero_grad(set_to_none=True)

    with torch.no_grad():
        stored = input_of(model.base, LITE0_START, photos)
    assert tuple(stored.shape) == (4, 192, 7, 7)
    resumed = ResumeAt(model, LITE0_START, 224)
    resumed.train()
    logits = resumed(stored)
    torch.testing.assert_close(logits, end_to_end, rtol=1e-4, atol=1e-4)
    torch.nn.functional.cross_entropy(logits, y).backward()
    for name, g in grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, g, rtol=1e-3, atol=1e-5)
    # frozen blocks stayed in eval mode, and so did every BatchNorm (freeze_bn)
    assert not model.base.blocks[5].training
    assert all(not m.training for m in model.base.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))


def test_views_are_the_photo_its_mirror_then_seeded_flips_and_crops(photos):
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(make_view(photos, 0, g1), photos)
    assert torch.equal(make_view(photos, 1, g1), photos.flip(3))
    a, b = make_view(photos, 2, g1), make_view(photos, 2, g2)
    assert torch.equal(a, b) and a.shape == photos.shape  # seeded: the same views again
    assert not torch.equal(a, photos) and not torch.equal(a, photos.flip(3))


def run(unfrozen, seed, acc, blocks=()):
    return UnfreezeRun(unfrozen, blocks, seed, acc, int(acc * 100), 100, 10, 2, 0.5)


def test_table_and_gains_pair_the_runs_seed_by_seed():
    runs = [run(0, 1, 0.90), run(0, 0, 0.92), run(1, 0, 0.93, ("head",)), run(1, 1, 0.90, ("head",)),
            run(2, 0, 0.95, ("block7", "head")), run(2, 1, 0.94, ("block7", "head"))]
    c = UnfreezeComparison("efficientnet_lite0", runs, 100, 100, 4, 1.0)
    assert c.setups() == [0, 1, 2]
    assert c.accuracies(0).tolist() == [0.92, 0.90]  # seed order
    np.testing.assert_allclose(c.gains(1), [0.01, 0.0])
    np.testing.assert_allclose(c.gains(2), [0.03, 0.04])
    lines = c.table().splitlines()
    assert len(lines) == 4
    assert lines[3].startswith("last 2 blocks (block7, head)")
    assert "+0.035 (+0.030..+0.040)" in lines[3] and "0.945" in lines[3]
    assert c.label(0, sep="\n") == "frozen base\n+ new head"


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(unfreeze=0), "unfreeze must hold whole numbers of last blocks in [1, 8]"),
    (dict(unfreeze=(1, 9)), "not 9"),
    (dict(unfreeze=()), "unfreeze is empty"),
    (dict(unfreeze=(1.5,)), "not 1.5"),
    (dict(seeds=()), "seeds is empty"),
    (dict(seeds=(0, -1)), "seed"),
    (dict(views=0), "views"),
    (dict(epochs=0), "epochs"),
    (dict(base_lr=-1e-4), "base_lr"),
    (dict(lr=float("nan")), "lr"),
])
def test_bad_settings_are_refused_before_any_photo_is_decoded(lite0, image_folder, monkeypatch,
                                                              kwargs, fragment):
    def no_decoding(*args, **kw):
        raise AssertionError("decoded before the settings were checked")
    monkeypatch.setattr(unfreezing_module, "decode_images", no_decoding)
    data = load_dataset(image_folder)
    with pytest.raises(OptionError, match=None) as err:
        unfreezing_comparison(lite0, data.train, data.test, progress=False, **kwargs)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_small_comparison_trains_what_it_says_and_leaves_the_network_alone(lite0, image_folder):
    data = load_dataset(image_folder)
    before = copy.deepcopy(lite0.model.state_dict())
    stored = store_views(lite0, data.train, data.test, unfreezable=2, views=2, progress=False)
    assert tuple(stored.H.shape) == (2, 9, 192, 7, 7) and stored.H.dtype == torch.float16
    assert tuple(stored.Ht.shape) == (6, 192, 7, 7) and stored.n_classes == 3
    settings = dict(unfreeze=(1, 2), seeds=(0, 1), epochs=2, head_epochs=3, stored=stored,
                    progress=False)
    c = unfreezing_comparison(lite0, data.train, data.test, **settings)
    assert [(r.unfrozen, r.seed) for r in c.runs] == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    by = {(r.unfrozen, r.seed): r for r in c.runs}
    # trainable parameters: the head (1280 x 3 + 3), + the head block, + block7
    assert by[0, 0].trainable == 3843
    assert by[1, 0].trainable == 3843 + 412_160 and by[1, 0].blocks == ("head",)
    assert by[2, 0].trainable == 3843 + 412_160 + 605_440 and by[2, 0].blocks == ("block7", "head")
    assert all(r.n_test == 6 and r.n_correct == round(r.test_accuracy * 6) for r in c.runs)
    assert c.n_train == 9 and c.views == 2 and c.settings["base_lr"] == pytest.approx(1e-4)
    # the same settings give the same numbers (seeded), and the network is untouched
    again = unfreezing_comparison(lite0, data.train, data.test, **settings)
    assert [r.test_accuracy for r in again.runs] == [r.test_accuracy for r in c.runs]
    for name, value in lite0.model.state_dict().items():
        assert torch.equal(value, before[name]), name
    # stored views of fewer blocks cannot serve a deeper set-up
    one = store_views(lite0, data.train, data.test, unfreezable=1, views=1, progress=False)
    assert one.start == "conv_head" and tuple(one.H.shape) == (1, 9, 320, 7, 7)
    with pytest.raises(OptionError, match="unfreezable=2"):
        unfreezing_comparison(lite0, data.train, data.test, unfreeze=(2,), stored=one, progress=False)


def test_a_gpu_gives_the_cpus_numbers_or_is_refused_in_one_line(lite0, image_folder):
    data = load_dataset(image_folder)
    settings = dict(unfreeze=(2,), seeds=(0,), views=1, epochs=1, head_epochs=2, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(OptionError, match="no usable CUDA GPU") as err:
            unfreezing_comparison(lite0, data.train, data.test, device="cuda", **settings)
        assert "\n" not in str(err.value)
        return
    on_cpu = unfreezing_comparison(lite0, data.train, data.test, device="cpu", **settings)
    on_gpu = unfreezing_comparison(lite0, data.train, data.test, device="cuda", **settings)
    for a, b in zip(on_cpu.runs, on_gpu.runs):  # 6 test photos: at most one may flip
        assert abs(a.test_accuracy - b.test_accuracy) <= 1 / 6 + 1e-9


def test_each_seed_runs_once():
    assert unfreezing_module._check_seeds((2, 0, 2, 1, 0)) == [2, 0, 1]
    assert unfreezing_module._check_seeds(3) == [3]


def test_stored_views_are_cached_and_read_back_without_decoding(lite0, image_folder, monkeypatch):
    from tplib.cache import cache_info

    data = load_dataset(image_folder)
    first = store_views(lite0, data.train, data.test, unfreezable=2, views=2, progress=False)
    assert not first.from_cache
    entries = [e for e in cache_info() if e["model"] == "efficientnet_lite0"]
    assert len(entries) == 2  # the training views and the test photos

    def no_decoding(*args, **kw):
        raise AssertionError("decoded although the views are in the cache")
    monkeypatch.setattr(unfreezing_module, "decode_images", no_decoding)
    again = store_views(lite0, data.train, data.test, unfreezable=2, views=2, progress=False)
    assert again.from_cache
    for name in ("H", "y", "Ht", "yt"):
        assert torch.equal(getattr(again, name), getattr(first, name)), name
    assert again.n_classes == first.n_classes and again.start == first.start
    # other views or another block are other entries: computed, not mixed up
    with pytest.raises(AssertionError, match="decoded although"):
        store_views(lite0, data.train, data.test, unfreezable=2, views=3, progress=False)
    with pytest.raises(AssertionError, match="decoded although"):
        store_views(lite0, data.train, data.test, unfreezable=1, views=2, progress=False)


def test_without_the_cache_nothing_is_written(lite0, image_folder):
    from tplib.cache import cache_info

    data = load_dataset(image_folder)
    stored = store_views(lite0, data.train, data.test, views=1, cache=False, progress=False)
    assert not stored.from_cache and tuple(stored.H.shape) == (1, 9, 192, 7, 7)
    assert cache_info() == []
