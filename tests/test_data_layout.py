"""Data folders that used to be read silently wrong: links, duplicates, names, flat layouts."""
import os
import unicodedata

import numpy as np
import pytest
from PIL import Image

from tplib.data import DATASET_LINK, OUTSIDE_LINK, SPLIT_LINK, Dataset, Split, load_dataset, resolve_root
from tplib.errors import DataError

COUNTS = {"alpha": 3, "beta": 3, "gamma": 3}


def _img(path, color=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), color).save(path)


def _reasons(split):
    return {os.path.relpath(p, split.root): r for p, r in split.ignored}


# ------------------------------------------------------------------ symbolic links
def test_link_to_the_parent_folder_does_not_pull_in_other_classes(image_folder):
    """Before: train/alpha/up -> .. counted beta's and gamma's images as alpha."""
    os.symlink("..", image_folder / "train" / "alpha" / "up")
    ds = load_dataset(image_folder)
    assert ds.train.counts() == COUNTS
    assert _reasons(ds.train)["alpha/up"] == OUTSIDE_LINK
    assert any("alpha/up" in w and OUTSIDE_LINK in w for w in ds.warnings)


def test_link_to_the_file_system_root_is_not_walked(image_folder):
    """Before: the walk went through the whole file system (PermissionError as a user)."""
    os.symlink("/", image_folder / "train" / "beta" / "everything")
    ds = load_dataset(image_folder)
    assert ds.train.counts() == COUNTS
    assert _reasons(ds.train)["beta/everything"] == OUTSIDE_LINK


def test_links_to_folders_elsewhere_or_to_other_classes_are_ignored(image_folder, tmp_path):
    _img(tmp_path / "elsewhere" / "far.jpg")
    os.symlink(tmp_path / "elsewhere", image_folder / "train" / "alpha" / "far")
    os.symlink(image_folder / "train" / "gamma", image_folder / "train" / "beta" / "g")
    os.symlink(image_folder / "test" / "alpha", image_folder / "train" / "alpha" / "leak")
    ds = load_dataset(image_folder)
    assert ds.train.counts() == COUNTS
    reasons = _reasons(ds.train)
    assert reasons["alpha/far"] == reasons["beta/g"] == reasons["alpha/leak"] == OUTSIDE_LINK


def test_a_link_inside_the_class_folder_is_followed_and_counted_once(image_folder):
    cls = image_folder / "train" / "alpha"
    _img(cls / "sub" / "deep.jpg")
    os.symlink(cls / "sub", cls / "alias")  # the same folder under a second name
    os.symlink("img_0.jpg", cls / "again.jpg")  # the same file under a second name
    ds = load_dataset(image_folder)
    assert ds.train.counts()["alpha"] == 4  # 3 + deep.jpg, each once
    assert cls / "img_0.jpg" in ds.train.paths and cls / "sub" / "deep.jpg" in ds.train.paths
    reasons = _reasons(ds.train)  # the paths without links are the ones kept
    assert reasons["alpha/again.jpg"] == f"same file as {cls / 'img_0.jpg'}"
    assert reasons["alpha/alias/deep.jpg"] == f"same file as {cls / 'sub' / 'deep.jpg'}"


def test_one_file_under_two_classes_keeps_the_first_label_only(image_folder):
    tr = image_folder / "train"
    os.symlink(tr / "alpha" / "img_0.jpg", tr / "gamma" / "borrowed.jpg")
    os.link(tr / "beta" / "img_1.jpg", tr / "gamma" / "hardlinked.jpg")
    ds = load_dataset(image_folder)
    assert ds.train.counts() == COUNTS  # neither copy in gamma got a second label
    reasons = _reasons(ds.train)
    assert reasons["gamma/borrowed.jpg"] == "same file already used as class alpha"
    assert reasons["gamma/hardlinked.jpg"] == "same file already used as class beta"
    assert len(set(map(os.path.realpath, ds.train.paths))) == len(ds.train)


def test_the_same_file_in_train_and_test_is_a_warning(image_folder):
    os.symlink(image_folder / "train" / "beta" / "img_2.jpg", image_folder / "test" / "beta" / "x.jpg")
    ds = load_dataset(image_folder)
    assert any("in both train and test" in w and "x.jpg" in w for w in ds.warnings)


def test_linked_class_folders(image_folder, tmp_path):
    _img(tmp_path / "photos" / "delta" / "d.jpg")
    _img(tmp_path / "photos" / "delta2" / "d.jpg", color=(0, 0, 200))
    os.symlink(tmp_path / "photos" / "delta", image_folder / "train" / "delta")  # followed
    os.symlink(tmp_path / "photos" / "delta2", image_folder / "test" / "delta")
    os.symlink(".", image_folder / "train" / "everything")  # the split itself
    os.symlink(image_folder, image_folder / "train" / "root")  # the dataset root
    os.symlink(image_folder / "train" / "beta", image_folder / "test" / "beta2")  # the other split
    ds = load_dataset(image_folder)
    assert ds.train.counts() == {**COUNTS, "delta": 1}
    assert _reasons(ds.train)["everything"] == SPLIT_LINK
    assert _reasons(ds.train)["root"] == SPLIT_LINK
    assert _reasons(ds.test)["beta2"] == DATASET_LINK


def test_unreadable_folders_are_listed_not_a_traceback(image_folder, monkeypatch):
    _img(image_folder / "train" / "beta" / "locked" / "x.jpg")
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("locked") or str(path).endswith(os.path.join("test", "gamma")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    ds = load_dataset(image_folder)
    assert ds.train.counts() == COUNTS
    assert _reasons(ds.train)["beta/locked"] == "cannot read (Permission denied)"
    assert _reasons(ds.test)["gamma"] == "cannot read (Permission denied)"
    assert any("locked" in w for w in ds.warnings)
    monkeypatch.setattr(os, "scandir", lambda p=".": scandir(p) if "alpha" not in str(p)
                        else (_ for _ in ()).throw(PermissionError(13, "Permission denied", str(p))))
    with pytest.raises(DataError) as err:
        load_dataset(image_folder)
    assert str(image_folder / "train" / "alpha") in str(err.value)
    assert "Permission denied" in str(err.value)


# ------------------------------------------------------------------ class names
def test_test_class_names_in_another_unicode_form_match(image_folder):
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    _img(image_folder / "train" / nfc / "a.jpg")
    _img(image_folder / "test" / nfd / "b.jpg")
    ds = load_dataset(image_folder)
    assert ds.classes == ["alpha", "beta", "café", "gamma"] and ds.classes[2] == nfc
    assert ds.test.counts()[nfc] == 1 and ds.warnings == []


def test_test_class_differing_only_by_case_is_named_with_its_near_match(image_folder):
    (image_folder / "test" / "beta").rename(image_folder / "test" / "Beta")
    with pytest.raises(DataError) as err:
        load_dataset(image_folder)
    msg = str(err.value)
    assert "test/Beta vs train/beta" in msg and "rename one" in msg and "\n" not in msg


# ------------------------------------------------------------------ flat layout
@pytest.fixture
def flat_folder(tmp_path):
    """A folder of class folders (no train/, test/): 5, 4 and 6 images."""
    root = tmp_path / "scenes"
    for k, (cls, n) in enumerate({"coast": 5, "forest": 4, "street": 6}.items()):
        for i in range(n):
            _img(root / cls / f"image_{i:04d}.jpg", color=(k * 80, i * 20, 0))
    return root


def test_flat_folder_without_split_names_the_option(flat_folder):
    for call in (lambda: load_dataset(flat_folder), lambda: resolve_root(flat_folder)):
        with pytest.raises(DataError) as err:
            call()
        msg = str(err.value)
        assert str(flat_folder) in msg and "--split N" in msg and "split=N" in msg
        assert "N=100" in msg and "\n" not in msg
    assert resolve_root(flat_folder, flat=True) == flat_folder


def test_flat_folder_split_is_fixed_and_recorded(flat_folder):
    ds = load_dataset(flat_folder, split=3)
    assert ds.classes == ["coast", "forest", "street"]
    assert ds.train.counts() == {"coast": 3, "forest": 3, "street": 3}
    assert ds.test.counts() == {"coast": 2, "forest": 1, "street": 3}
    assert ds.split_rule == "flat folder split: 3 train per class, rest test, seed 0"
    assert "flat folder split" in ds.describe()
    for c, n in (("coast", 5), ("forest", 4), ("street", 6)):
        files = sorted((flat_folder / c).iterdir())
        perm = np.random.default_rng(0).permutation(n)
        assert [p for p, lab in zip(ds.train.paths, ds.train.labels) if ds.classes[lab] == c] \
            == [files[i] for i in sorted(perm[:3])]
        assert [p for p, lab in zip(ds.test.paths, ds.test.labels) if ds.classes[lab] == c] \
            == [files[i] for i in sorted(perm[3:])]
    assert not set(ds.train.paths) & set(ds.test.paths)
    again = load_dataset(flat_folder, split=3)
    assert again.train.paths == ds.train.paths and again.test.paths == ds.test.paths


def test_flat_folder_unpacked_into_a_folder_of_its_own(flat_folder):
    (flat_folder / "README.txt").write_text("15 Scene")
    ds = load_dataset(flat_folder.parent, split=2)
    assert ds.root == flat_folder and len(ds.train) == 6
    assert _reasons(ds.train)["README.txt"] == "file directly in the data folder, not in a class folder"


def test_flat_folder_class_too_small_for_the_split(flat_folder):
    with pytest.raises(DataError) as err:
        load_dataset(flat_folder, split=5)
    msg = str(err.value)
    assert "coast (5 images" in msg and "forest (4 images" in msg and "street" not in msg
    assert "split=5" in msg and "\n" not in msg


def test_split_is_refused_where_train_and_test_exist(image_folder):
    with pytest.raises(DataError, match="already has train/ and test/"):
        load_dataset(image_folder, split=2)
    for bad in (0, -1, True, 2.5, "3"):
        with pytest.raises(ValueError, match="split"):
            load_dataset(image_folder, split=bad)


# ------------------------------------------------------------------ provenance
def test_source_and_origin_are_stored(image_folder, flat_folder):
    ds = load_dataset(image_folder)
    assert (ds.source, ds.origin, ds.train.source, ds.test.origin) == ("folder", "", "folder", "")
    assert ds.split_rule == "train/ and test/ folders"
    ds = load_dataset(flat_folder, split=2, source="download", origin="https://example.org/x.zip")
    for part in (ds, ds.train, ds.test, ds.subset(1), ds.subset(1).test):
        assert part.source == "download" and part.origin == "https://example.org/x.zip"
    assert ds.subset(1).split_rule == ds.split_rule
    with pytest.raises(ValueError, match="source"):
        load_dataset(image_folder, source="web")
    # the fields have defaults, so code building splits by hand keeps working
    split = Split(image_folder, "train", ["a"], [], np.zeros(0, dtype=np.int64))
    assert split.source == "folder" and Dataset(image_folder, split, split).split_rule == ""


@pytest.mark.parametrize("name,hint", [("Test", "found Test: rename it to test"),
                                       ("val", "found val: rename it to test"),
                                       ("evaluation", "found: evaluation, train")])
def test_a_test_folder_named_otherwise_is_pointed_at(tmp_path, name, hint):
    for split in ("train", name):
        for cls in ("a", "b"):
            _img(tmp_path / split / cls / "1.jpg")
    with pytest.raises(DataError, match=f"test does not exist or is not a folder \\({hint}\\)"):
        load_dataset(tmp_path)
