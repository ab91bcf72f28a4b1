"""The feature cache never serves damaged rows or another model's rows, and survives
unwritable or full disks."""
import errno
import json
import logging
import os

import numpy as np
import pytest

import tplib.cache as tc
from tplib.errors import CacheUnavailableError, DiskFullError, TplibError
from tplib.paths import feature_cache_dir

DIMS = {"pooled": 6, "block5": 4}


def _rows(n, d, seed):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _write_entry(key="net-0123abcd", n=10, invalid=(3,), info=None, batch=4):
    """A finished entry written through the real writer; returns its expected valid rows."""
    ok_all = np.ones(n, dtype=bool)
    ok_all[list(invalid)] = False
    full = {layer: _rows(n, d, seed) for seed, (layer, d) in enumerate(DIMS.items())}
    with tc.DiskWriter(key, DIMS, n, np.dtype("float32")) as w:
        for s in range(0, n, batch):
            ok = ok_all[s:s + batch]
            errors = [(f"img{i}.jpg", "cannot decode") for i in range(s, s + len(ok)) if not ok_all[i]]
            w.write(s, {k: v[s:s + batch][ok] for k, v in full.items()}, ok, errors)
        w.finish(info=info)
    return {k: v[ok_all] for k, v in full.items()}, tc.entry_path(key)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "tplib" and r.levelno == logging.WARNING]


def test_an_intact_entry_is_read_back_exactly():
    expected, entry = _write_entry()
    arrays, valid, skipped, where = tc.load(entry.name)
    assert where == entry and valid.sum() == 9 and skipped == [("img3.jpg", "cannot decode")]
    for layer, rows in expected.items():
        np.testing.assert_array_equal(arrays[layer], rows)
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["format"] == tc.META_FORMAT
    assert set(meta["checksums"]) == set(DIMS)
    assert all(c.startswith("crc32:") for c in meta["checksums"].values())
    assert meta["nonfinite_rows"] == {"pooled": 0, "block5": 0}


def _overwrite_row(path, row, values):
    arr = np.load(path, mmap_mode="r+")
    arr[row] = values
    arr.flush()
    del arr


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 8)


def _restamp(entry, layer):
    """Store the checksum of the file as it is now (a 'consistent' edit of meta.json)."""
    meta = json.loads((entry / "meta.json").read_text())
    _, meta["checksums"][layer] = tc._read_checked(entry / f"{layer}.npy", meta["n_rows"],
                                                   meta["dims"][layer], np.dtype(meta["dtype"]))
    (entry / "meta.json").write_text(json.dumps(meta))


def _old_format(entry):
    meta = json.loads((entry / "meta.json").read_text())
    for field in ("format", "checksums", "nonfinite_rows", "created", "info"):
        meta.pop(field)
    (entry / "meta.json").write_text(json.dumps(meta))


DAMAGE = {
    "rows changed": (lambda e: _overwrite_row(e / "pooled.npy", 2, 0.5), "checksum"),
    "truncated file": (lambda e: _truncate(e / "block5.npy"), "truncated"),
    "empty file": (lambda e: (e / "pooled.npy").write_bytes(b""), "no valid .npy header"),
    "missing layer file": (lambda e: (e / "block5.npy").unlink(), "block5.npy is missing"),
    "NaN rows": (lambda e: (_overwrite_row(e / "pooled.npy", 4, np.nan), _restamp(e, "pooled")),
                 "NaN or infinity"),
    "meta.json garbage": (lambda e: (e / "meta.json").write_text('{"n_rows": 10, "lay'),
                          "meta.json is unreadable"),
    "meta.json missing": (lambda e: (e / "meta.json").unlink(), "meta.json is missing"),
    "old format": (_old_format, "without checksums"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_entry_is_reported_removed_and_rebuilt_once(damage, caplog):
    expected, entry = _write_entry()
    harm, reason = DAMAGE[damage]
    harm(entry)
    info = {e["name"]: e for e in tc.cache_info()}[entry.name]
    if damage in ("rows changed", "NaN rows"):
        assert info["state"] == "complete"  # sizes are right: only the checksums tell
    else:
        assert info["state"] == "damaged" and reason in info["problem"]
    caplog.set_level(logging.WARNING, logger="tplib")
    assert tc.load(entry.name) is None
    messages = _warnings(caplog)
    assert len(messages) == 1 and str(entry) in messages[0] and reason in messages[0]
    assert not entry.exists()
    # the caller recomputes: the new entry is served from then on, without warnings
    _write_entry()
    caplog.clear()
    arrays, *_ = tc.load(entry.name)
    np.testing.assert_array_equal(arrays["pooled"], expected["pooled"])
    assert _warnings(caplog) == []


def test_the_new_entry_replaces_a_broken_folder_of_the_same_name(caplog):
    """A folder without meta.json used to block every later entry of that key."""
    _, entry = _write_entry()
    (entry / "meta.json").unlink()
    caplog.set_level(logging.WARNING, logger="tplib")
    _write_entry()  # finished without load() having removed the broken folder first
    assert any("damaged" in m and "meta.json is missing" in m for m in _warnings(caplog))
    assert [e["state"] for e in tc.cache_info()] == ["complete"]
    assert tc.load(entry.name) is not None


def test_a_finished_entry_of_a_concurrent_run_is_kept():
    _, entry = _write_entry()
    created = json.loads((entry / "meta.json").read_text())["created"]
    inode = (entry / "meta.json").stat().st_ino
    _write_entry()
    assert (entry / "meta.json").stat().st_ino == inode
    assert json.loads((entry / "meta.json").read_text())["created"] == created
    assert [p.name for p in feature_cache_dir().iterdir()] == [entry.name]


def test_cache_info_describes_each_entry(tmp_path):
    images = [tmp_path / "data" / "train" / c / f"{i}.jpg" for c in ("a", "b") for i in range(5)]
    info = tc.entry_info("efficientnet_lite0", {"pooled": "x", "block5": "y"}, "avg", images,
                         precision="fp32")
    _, entry = _write_entry("efficientnet_lite0-00aa11bb", info=info)
    _write_entry("vgg16-1234", info=None)
    (feature_cache_dir() / "vgg16-5678").mkdir()  # a folder without meta.json
    partial = tc.DiskWriter("vgg16-9999", DIMS, 8, np.dtype("float32"))
    partial.write(0, {k: _rows(4, d, 0) for k, d in DIMS.items()}, np.ones(4, bool), [])
    partial._close()
    rows = {e["name"]: e for e in tc.cache_info()}
    assert list(rows) == ["efficientnet_lite0-00aa11bb", "vgg16-1234", "vgg16-5678",
                          "vgg16-9999.partial"]
    e = rows["efficientnet_lite0-00aa11bb"]
    assert e["state"] == "complete" and e["problem"] == ""
    assert e["model"] == "efficientnet_lite0" and e["layers"] == ["pooled", "block5"]
    assert e["pooling"] == "avg" and e["data_folder"] == str(tmp_path / "data" / "train")
    assert e["n_images"] == 10 and e["path"] == str(entry)
    assert e["bytes"] == sum(f.stat().st_size for f in entry.iterdir())
    assert e["created"].endswith("Z") and e["created"][:2] == "20"
    assert json.loads((entry / "meta.json").read_text())["info"]["precision"] == "fp32"
    old = rows["vgg16-1234"]  # finished without info: what the files say
    assert old["state"] == "complete" and old["model"] == "vgg16" and old["pooling"] is None
    assert old["n_images"] == 10 and old["layers"] == ["pooled", "block5"]
    assert rows["vgg16-5678"]["state"] == "damaged"
    assert rows["vgg16-5678"]["problem"] == "meta.json is missing"
    p = rows["vgg16-9999.partial"]
    assert p["state"] == "partial" and p["done"] == 4 and p["n_images"] == 8 and p["model"] == "vgg16"


def test_resume_message_goes_to_the_logger(caplog, capsys):
    w = tc.DiskWriter("net-r", DIMS, 8, np.dtype("float32"))
    w.write(0, {k: _rows(4, d, 0) for k, d in DIMS.items()}, np.ones(4, bool), [])
    w._close()
    caplog.set_level(logging.WARNING, logger="tplib")
    with tc.DiskWriter("net-r", DIMS, 8, np.dtype("float32")) as again:
        assert again.done == 4
    assert any("Resuming an interrupted extraction at image 4/8" in m for m in _warnings(caplog))
    assert capsys.readouterr().err == ""  # logged, not printed


# ------------------------------------------------------------------ unwritable cache
def _one_line_naming(exc, folder):
    msg = str(exc)
    assert "\n" not in msg and str(folder) in msg and "TPLIB_CACHE" in msg
    return msg


def test_cache_pointing_at_a_file_is_unavailable_not_an_oserror(tmp_path, monkeypatch):
    afile = tmp_path / "cachefile"
    afile.write_text("not a folder")
    monkeypatch.setenv("TPLIB_CACHE", str(afile))
    with pytest.raises(CacheUnavailableError) as err:
        tc.open_writer("net-1", DIMS, 5, np.dtype("float32"))
    _one_line_naming(err.value, feature_cache_dir())
    assert isinstance(err.value, TplibError)
    assert tc.load("net-1") is None and tc.cache_info() == []
    writer, reason = tc.open_writer_or_memory("net-1", DIMS, 5, np.dtype("float32"))
    assert type(writer) is tc.MemoryWriter and str(feature_cache_dir()) in reason
    with writer:  # the same calls as a disk writer, finish(info=...) included
        writer.write(0, {k: _rows(5, d, 0) for k, d in DIMS.items()}, np.ones(5, bool), [])
        arrays, valid, _ = writer.finish(info={"model": "net"})
    assert arrays["pooled"].shape == (5, 6) and valid.all()


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOENT])
def test_a_cache_folder_that_cannot_be_created_or_written(code, monkeypatch):
    from pathlib import Path

    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if str(self).startswith(str(feature_cache_dir())):
            raise OSError(code, os.strerror(code), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(CacheUnavailableError) as err:
        tc.open_writer("net-2", DIMS, 5, np.dtype("float32"))
    msg = _one_line_naming(err.value, feature_cache_dir())
    assert os.strerror(code) in msg and not isinstance(err.value, DiskFullError)
    writer, reason = tc.open_writer_or_memory("net-2", DIMS, 5, np.dtype("float32"))
    assert type(writer) is tc.MemoryWriter and reason == msg


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="permission bits do not stop root")
def test_a_read_only_cache_folder(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setenv("TPLIB_CACHE", str(ro))
    ro.chmod(0o500)
    try:
        with pytest.raises(CacheUnavailableError, match="Permission denied"):
            tc.open_writer("net-3", DIMS, 5, np.dtype("float32"))
    finally:
        ro.chmod(0o700)


# ------------------------------------------------------------------ full disk
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["pwrite", "fsync", "progress", "meta"])
def test_a_full_disk_names_the_space_needed_and_leaves_only_a_partial_entry(where, monkeypatch):
    n, key = 1000, "net-full"
    first = tc.open_writer(key, DIMS, n, np.dtype("float32"))
    first.write(0, {k: _rows(4, d, 0) for k, d in DIMS.items()}, np.ones(4, bool), [])
    if where == "meta":  # every row written; sealing the entry fails
        first.write(4, {k: _rows(n - 4, d, 1) for k, d in DIMS.items()}, np.ones(n - 4, bool), [])
    target = {"pwrite": (os, "pwrite"), "fsync": (os, "fsync"),
              "progress": (tc, "atomic_write_text"), "meta": (tc, "atomic_write_text")}[where]
    with monkeypatch.context() as patch, pytest.raises(DiskFullError) as err, first:
        patch.setattr(*target, _enospc)
        if where == "meta":
            first.finish()
        else:
            first.write(4, {k: _rows(4, d, 1) for k, d in DIMS.items()}, np.ones(4, bool), [])
    msg = str(err.value)
    assert isinstance(err.value, CacheUnavailableError)  # one except clause covers both
    assert "\n" not in msg and str(feature_cache_dir()) in msg
    assert "40.0 kB" in msg and "1,000 images x 10 values x 4 bytes" in msg  # 1000 x 10 x 4
    # nothing that could pass for a finished entry
    assert [e["state"] for e in tc.cache_info()] == ["partial"]
    assert tc.load(key) is None
    # space freed: the next run resumes from the last recorded batch and finishes
    with tc.open_writer(key, DIMS, n, np.dtype("float32")) as again:
        assert again.done == (n if where == "meta" else 4)
        if again.done < n:
            again.write(again.done, {k: _rows(n - again.done, d, 2) for k, d in DIMS.items()},
                        np.ones(n - again.done, bool), [])
        again.finish()
    assert [e["state"] for e in tc.cache_info()] == ["complete"]
    assert tc.load(key) is not None


def test_other_write_failures_are_cache_unavailable(monkeypatch):
    w = tc.open_writer("net-eio", DIMS, 8, np.dtype("float32"))
    def broken_pwrite(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "pwrite", broken_pwrite)
    with pytest.raises(CacheUnavailableError, match="Input/output error") as err, w:
        w.write(0, {k: _rows(4, d, 0) for k, d in DIMS.items()}, np.ones(4, bool), [])
    assert not isinstance(err.value, DiskFullError)


# ------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def few_images(tmp_path_factory):
    from tplib.data import load_dataset
    from tplib.synthetic import generate_scene_standin

    root = generate_scene_standin(tmp_path_factory.mktemp("gen") / "scenes", n_train=1, n_test=1)
    return load_dataset(root).test


def test_rows_changed_on_disk_are_never_served(lite0, few_images, caplog):
    """Before: the edited rows came back from the cache, and the run reported another accuracy."""
    from tplib.engine import Engine
    from tplib.features import extract_features

    opts = dict(engine=Engine(precision="fp32"), progress=False)
    first = extract_features(lite0, few_images, "pooled", **opts)
    layer_file = first.cache_path / "pooled.npy"
    _overwrite_row(layer_file, 1, np.zeros(1280, dtype=np.float32))
    caplog.set_level(logging.WARNING, logger="tplib")
    second = extract_features(lite0, few_images, "pooled", **opts)
    assert not second.from_cache
    assert any(str(first.cache_path) in m and "checksum" in m for m in _warnings(caplog))
    np.testing.assert_array_equal(second["pooled"], first["pooled"])
    third = extract_features(lite0, few_images, "pooled", **opts)
    assert third.from_cache
    np.testing.assert_array_equal(third["pooled"], first["pooled"])


def test_entry_without_meta_is_recomputed_once_then_served(lite0, few_images):
    """Before: recomputed on every run, while `tplib cache info` called it complete."""
    from tplib.engine import Engine
    from tplib.features import extract_features

    opts = dict(engine=Engine(precision="fp32"), progress=False)
    first = extract_features(lite0, few_images, "pooled", **opts)
    (first.cache_path / "meta.json").unlink()
    assert [e["state"] for e in tc.cache_info()] == ["damaged"]
    assert not extract_features(lite0, few_images, "pooled", **opts).from_cache
    again = extract_features(lite0, few_images, "pooled", **opts)
    assert again.from_cache and [e["state"] for e in tc.cache_info()] == ["complete"]
    np.testing.assert_array_equal(again["pooled"], first["pooled"])


def test_file_names_that_are_not_utf8_are_keyed_and_reported(tmp_path):
    """A name with a Latin-1 byte (common on old archives) reaches Python as a surrogate."""
    from tplib.fsutil import atomic_write_text

    name = os.fsdecode(b"caf\xe9.jpg")  # 'caf\udce9.jpg'
    path = tmp_path / name
    path.write_bytes(b"x")
    other = tmp_path / "cafe.jpg"
    other.write_bytes(b"x")
    assert tc.files_digest([path]) != tc.files_digest([other])  # exact bytes, no crash
    atomic_write_text(tmp_path / "summary.md", f"- `{path.name}`: not an image\n")
    assert "caf\\udce9.jpg" in (tmp_path / "summary.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------ damaged progress.json
def _partial(key="net-p", n=8, done=4):
    w = tc.DiskWriter(key, DIMS, n, np.dtype("float32"))
    w.write(0, {k: _rows(done, d, 0) for k, d in DIMS.items()}, np.ones(done, bool), [])
    w._close()
    return w.partial / "progress.json"


@pytest.mark.parametrize("text", [
    '{"done": 4, "n_rows": "eight", "invalid": [], "skipped": []}',  # crashed `tplib cache info`
    '{"done": "4", "n_rows": 8, "invalid": [], "skipped": []}',
    '{"done": 9, "n_rows": 8, "invalid": [], "skipped": []}',
    '{"done": 4, "n_rows": 8, "invalid": [7], "skipped": []}',
    '{"done": 4, "n_rows": 8, "invalid": [], "skipped": [3]}',
    '[4, 8]', '"done"', '{"done": 4', "\udcff", ""])
def test_a_damaged_progress_file_is_reported_and_restarted_never_a_crash(text, caplog):
    progress = _partial()
    progress.write_bytes(text.encode("utf-8", "surrogateescape"))
    info = {e["name"]: e for e in tc.cache_info()}["net-p.partial"]
    assert info["state"] == "partial" and info["done"] == 0 and info["n_images"] is None
    assert "progress.json" in info["problem"] and info["problem"].endswith("the next run starts it again")
    caplog.set_level(logging.WARNING, logger="tplib")
    with tc.DiskWriter("net-p", DIMS, 8, np.dtype("float32")) as again:  # a resume starts over
        assert again.done == 0 and not again.valid.any() and again.skipped == []
    assert any("cannot resume the interrupted extraction" in m for m in _warnings(caplog))


def test_cache_info_of_a_partial_entry_before_its_first_batch_has_no_problem():
    folder = feature_cache_dir() / "net-q.partial"
    folder.mkdir(parents=True)
    e = tc.cache_info()[0]
    assert (e["state"], e["done"], e["n_images"], e["problem"]) == ("partial", 0, None, "")
    progress = _partial("net-q")  # after one batch of 4 out of 8
    e = tc.cache_info()[0]
    assert (e["done"], e["n_images"], e["problem"]) == (4, 8, "")
    assert json.loads(progress.read_text())["done"] == 4


# ------------------------------------------------------------------ the weights' digest
def test_weights_digest_sees_any_change_of_any_value_and_nothing_else():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                                torch.nn.Flatten(), torch.nn.Linear(8 * 30 * 30, 5))
    base = tc.weights_digest(model)
    assert base == tc.weights_digest(model) == tc.weights_digest(__import__("copy").deepcopy(model))
    model.to(memory_format=torch.channels_last)  # another layout, the same numbers
    assert tc.weights_digest(model) == base
    model.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        w = model[3].weight
        old = w[2, 1234].item()
        w[2, 1234] = float(np.nextafter(np.float32(old), np.float32(1)))  # one value, one ulp
        assert tc.weights_digest(model) != base
        w[2, 1234] = old
        assert tc.weights_digest(model) == base
        w[[0, 1]] = w[[1, 0]].clone()  # two rows swap places: the same sum of words
        assert tc.weights_digest(model) != base
        w[[0, 1]] = w[[1, 0]].clone()
        model[1].running_mean += 1  # a buffer (BatchNorm statistics) counts too
        assert tc.weights_digest(model) != base
        model[1].running_mean -= 1
    assert tc.weights_digest(model) == base
    model[3] = torch.nn.Linear(8 * 30 * 30, 4)  # another shape
    assert tc.weights_digest(model) != base


def test_weights_digest_of_vgg16_is_cheap():
    """VGG16's 138 M parameters (553 MB) in well under a second (about 0.1 s measured here)."""
    import time

    import torchvision

    model = torchvision.models.vgg16()
    tc.weights_digest(model)  # first touch of the freshly allocated pages
    seconds = []
    for _ in range(3):  # the best of three: other processes share these cores
        t0 = time.perf_counter()
        tc.weights_digest(model)
        seconds.append(time.perf_counter() - t0)
    assert min(seconds) < 0.8


def test_weights_changed_in_place_are_never_served_the_old_rows(lite0, few_images):
    """Before: after the weights changed in place, the cache returned the old rows."""
    import torch

    from tplib.engine import Engine
    from tplib.features import extract_features

    opts = dict(engine=Engine(precision="fp32"), progress=False)
    first = extract_features(lite0, few_images, "pooled", **opts)
    conv = lite0.model.conv_head.weight
    saved = conv.detach().clone()
    try:
        with torch.no_grad():
            conv.mul_(1.5)  # e.g. a training step on the backbone itself
        changed = extract_features(lite0, few_images, "pooled", **opts)
        assert not changed.from_cache and changed.cache_path != first.cache_path
        assert not np.allclose(changed["pooled"], first["pooled"])
        uncached = extract_features(lite0, few_images, "pooled", cache=False, **opts)
        np.testing.assert_array_equal(changed["pooled"], uncached["pooled"])
    finally:
        with torch.no_grad():
            conv.copy_(saved)
    back = extract_features(lite0, few_images, "pooled", **opts)  # the old weights: the old entry
    assert back.from_cache and back.cache_path == first.cache_path
    np.testing.assert_array_equal(back["pooled"], first["pooled"])


@pytest.mark.parametrize("n_bytes", [0, 3, 8, 44, 4096 + 5])
def test_weights_digest_sums_alike_with_numpy_and_with_torch(n_bytes):
    """The torch path (models on a GPU) gives the CPU's numpy value, wrap-around included."""
    import torch

    raw = torch.from_numpy(np.random.default_rng(n_bytes).integers(0, 256, n_bytes, dtype=np.uint8))
    raw[: n_bytes // 8 * 8] = 255  # words of 2**64 - 1: the sum wraps around
    assert tc._word_sum_and_sample(raw, numpy=True) == tc._word_sum_and_sample(raw, numpy=False)
    total, sample = tc._word_sum_and_sample(raw, numpy=True)
    n_words = n_bytes // 8
    assert total == (n_words * (2**64 - 1)) % 2**64
    assert len(sample) == 8 * min(n_words, 16) + n_bytes % 8
