"""The data step (find_dataset), alone and through tplib.setup()."""
import dataclasses
import random
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import tplib
from tplib.catalog import KNOWN_DATASETS
from tplib.datasets import find_dataset
from tplib.download import git_blob_sha1
from tplib.errors import DataError, DownloadError, IntegrityError
from tplib.paths import data_cache_dir
from tplib.profile import active_profile, get_profile


def _img(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (32, 24), value).save(path)


def _scene_folder(root, classes=("coast", "forest"), n_train=3, n_test=2):
    for split, n in (("train", n_train), ("test", n_test)):
        for k, cls in enumerate(classes):
            for i in range(n):
                _img(root / split / cls / f"image_{i + 1:04d}.jpg", 40 * k + i)
    return root


@pytest.fixture
def closed_download(monkeypatch):
    """The real download code, against a port nothing listens on."""
    _set_archive(monkeypatch, url="http://127.0.0.1:9/15ScenesData.zip")


def _set_archive(monkeypatch, **changes):
    """15 Scene's record with its archive changed (URL, size, checksum), for this test only."""
    record = KNOWN_DATASETS["15scene"]
    monkeypatch.setitem(KNOWN_DATASETS, "15scene", dataclasses.replace(
        record, resource=dataclasses.replace(record.resource, **changes)))


def test_shared_data_folder_is_found_first(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    _scene_folder(shared / "15SceneData")
    monkeypatch.setenv("TPLIB_REAL_DATA", str(shared))
    ds = find_dataset("15scene", profile=get_profile("full"))
    assert ds.source == "folder" and ds.is_real and ds.title == "15 Scene"
    assert ds.root == shared / "15SceneData" and "shared data folder" in ds.origin
    assert (len(ds.train), len(ds.test), ds.subset_rule) == (6, 4, "")


def test_ci_profile_takes_the_first_files_of_every_class(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    _scene_folder(shared / "catsdogs", classes=("cat", "dog"), n_train=120, n_test=60)
    monkeypatch.setenv("TPLIB_REAL_DATA", str(shared))
    full = find_dataset("catsdogs", profile=get_profile("full"))
    ci = find_dataset("catsdogs", profile=get_profile("ci"))
    assert ci.train.counts() == {"cat": 100, "dog": 100} and ci.test.counts() == {"cat": 50, "dog": 50}
    expected = [p for p in full.train.paths if int(p.stem[-4:]) <= 100]
    assert ci.train.paths == expected  # the first 100 file names of each class, sorted
    assert "first 100 train and 50 test images" in ci.subset_rule


def test_a_known_data_set_given_by_its_folder_gets_its_own_subset_and_title(tmp_path):
    """--data .../15SceneData is 15 Scene: the ci subset and title of find_dataset("15scene")."""
    folder = _scene_folder(tmp_path / "copy" / "15SceneData", n_train=25, n_test=22)
    other = _scene_folder(tmp_path / "mine", n_train=25, n_test=22)
    ci = get_profile("ci")
    known = find_dataset(str(folder), profile=ci)
    assert (known.name, known.title) == ("15scene", "15 Scene")
    assert known.train.counts() == {"coast": 20, "forest": 20} and len(known.test) == 40
    plain = find_dataset(str(other), profile=ci)  # an unknown folder: the profile's default subset
    assert (plain.name, plain.title) == ("mine", "mine")
    assert plain.train.counts() == {"coast": 10, "forest": 10}


def test_zip_placed_in_the_cache_is_verified_and_unpacked_once(tmp_path, monkeypatch):
    src = _scene_folder(tmp_path / "src" / "15SceneData")
    cache = data_cache_dir()
    cache.mkdir(parents=True)
    zpath = cache / "15ScenesData.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in sorted(src.rglob("*.jpg")):
            z.write(f, f.relative_to(src.parent).as_posix())
    _set_archive(monkeypatch, url="http://127.0.0.1:9/none.zip", size=zpath.stat().st_size,
                 check=("git-blob-sha1", git_blob_sha1(zpath)))
    ds = find_dataset("15scene", profile=get_profile("full"), download=False)
    assert ds.root == cache / "15SceneData" and ds.source == "cache"
    assert ds.classes == ["coast", "forest"]
    # a damaged zip placed by hand is reported, never unpacked or worked around
    (cache / ".15ScenesData.zip.unpacked").unlink()
    zpath.write_bytes(zpath.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(IntegrityError, match="15ScenesData.zip"):
        find_dataset("15scene", profile=get_profile("full"), download=False)


def test_no_data_and_no_network_strict_says_what_to_place(closed_download):
    with pytest.raises(DownloadError) as err:
        find_dataset("15scene", profile=get_profile("full"), strict=True)
    msg = str(err.value)
    assert "15ScenesData.zip" in msg and "86,520,868" in msg and "TPLIB_REAL_DATA" in msg
    with pytest.raises(DataError, match="15ScenesData.zip"):
        find_dataset("15scene", profile=get_profile("full"), download=False, strict=True)


def test_generated_stand_in_is_never_taken_for_real(closed_download):
    ds = find_dataset("15scene", profile=get_profile("quick"))
    assert ds.source == "generated" and not ds.is_real
    assert ds.notes and ds.notes[0].startswith("GENERATED DATA")
    assert ds.train.counts()["coast"] == 5 and len(ds.classes) == 15
    # the tests point TPLIB_REAL_DATA at a folder that does not exist: the banner says so
    assert "TPLIB_REAL_DATA is set to" in ds.notes[0] and "which does not exist" in ds.notes[0]


def test_catsdogs_has_no_stand_in():
    with pytest.raises(DataError) as err:
        find_dataset("catsdogs", profile=get_profile("full"), download=False)
    assert "catsdogs/" in str(err.value) and "TPLIB_REAL_DATA" in str(err.value)


def test_setup_seeds_sets_the_profile_and_says_what_is_active(tmp_path, monkeypatch, capsys):
    shared = tmp_path / "shared"
    _scene_folder(shared / "15SceneData")
    monkeypatch.setenv("TPLIB_REAL_DATA", str(shared))
    monkeypatch.setenv("TPLIB_PROFILE", "ci")
    session = tplib.setup(data="15scene")
    block = capsys.readouterr().out
    assert block == session.summary() + "\n"
    assert block.startswith("profile  ci: ") and "device   cpu" in block
    assert "network  efficientnet_lite0 with ImageNet weights" in block
    assert "!!! NOT VGG16" in block and "data     15 Scene: 2 classes" in block
    assert max(len(line) for line in block.splitlines()) <= 88
    assert session.backbone.name == "efficientnet_lite0" and session.dataset.is_real
    assert active_profile().name == "ci"
    # seeded: the same draws after every setup
    draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    tplib.setup(network=None, quiet=True)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == draws
