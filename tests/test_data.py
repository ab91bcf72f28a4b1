"""Image folders made by hand: stray files, nesting, symlinks, odd names, mismatched classes."""
import os
import shutil

import pytest
from oddimages import make_stray_files
from PIL import Image

from tplib.data import load_dataset, resolve_root
from tplib.errors import DataError, InputError, OptionError


def _img(path, color=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), color).save(path)


def test_basic_layout_labels_by_sorted_class_name(image_folder):
    ds = load_dataset(image_folder)
    assert ds.classes == ["alpha", "beta", "gamma"]
    assert len(ds.train) == 9 and len(ds.test) == 6
    assert ds.train.counts() == {"alpha": 3, "beta": 3, "gamma": 3}
    for path, label in zip(ds.train.paths, ds.train.labels):
        assert path.parent.name == ds.classes[label]
    assert ds.warnings == []


def test_stray_files_are_ignored_and_listed(image_folder):
    stray = make_stray_files(image_folder / "train" / "alpha")
    ds = load_dataset(image_folder)
    assert len(ds.train) == 9  # the valid x.jpg in .ipynb_checkpoints is not taken
    listed = {os.path.basename(p) for p, _ in ds.train.ignored}
    assert {"README.txt", "notes.md"} <= listed
    # system clutter and hidden files are ignored silently
    assert {".DS_Store", "Thumbs.db"} <= set(stray) and not {".DS_Store", "Thumbs.db"} & listed
    reasons = dict((os.path.basename(p), r) for p, r in ds.train.ignored)
    assert "not an image" in reasons["README.txt"]


def test_nested_symlinked_and_non_ascii(image_folder, tmp_path):
    _img(image_folder / "train" / "beta" / "sub" / "deeper" / "nested é.jpg")
    outside = tmp_path / "elsewhere"
    _img(outside / "linked.png")
    os.symlink(outside, image_folder / "train" / "gamma" / "link_dir")
    os.symlink(outside / "linked.png", image_folder / "train" / "alpha" / "file_link.png")
    os.symlink(image_folder / "train" / "gamma", image_folder / "train" / "gamma" / "loop")
    os.symlink(tmp_path / "missing.jpg", image_folder / "train" / "alpha" / "broken.jpg")
    space_class = image_folder / "train" / "delta class é"
    _img(space_class / "a b.jpg")
    _img(image_folder / "test" / "delta class é" / "c d.jpg")
    ds = load_dataset(image_folder)
    names = [p.name for p in ds.train.paths]
    assert "nested é.jpg" in names and "file_link.png" in names  # linked files are followed
    # a linked folder outside its class folder is not (tests/test_data_layout.py)
    assert "linked.png" not in names
    assert (str(image_folder / "train" / "gamma" / "link_dir"),
            "symbolic link to a folder outside the class folder") in ds.train.ignored
    assert names.count("img_0.jpg") == 3  # the symlink loop did not duplicate gamma
    assert ds.classes == ["alpha", "beta", "delta class é", "gamma"]
    assert any("broken symbolic link" in r for _, r in ds.train.ignored)


def test_empty_class_folder_is_an_error_naming_it(image_folder):
    (image_folder / "train" / "zeta").mkdir()
    with pytest.raises(DataError) as err:
        load_dataset(image_folder)
    assert str(image_folder / "train" / "zeta") in str(err.value)


def test_test_class_unknown_to_train_is_an_error(image_folder):
    _img(image_folder / "test" / "omega" / "x.jpg")
    with pytest.raises(DataError, match="omega"):
        load_dataset(image_folder)


def test_train_class_missing_from_test_is_reported(image_folder):
    shutil.rmtree(image_folder / "test" / "beta")
    ds = load_dataset(image_folder)
    assert ds.classes == ["alpha", "beta", "gamma"]  # labels still mean the same classes
    assert set(ds.classes[i] for i in ds.test.labels) == {"alpha", "gamma"}
    assert any("beta" in w for w in ds.warnings)


def test_missing_path_says_what_layout_is_expected(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path / "nope")
    assert "does not exist" in str(err.value) and "train/<class>" in str(err.value)
    (tmp_path / "flat").mkdir()
    _img(tmp_path / "flat" / "a.jpg")
    with pytest.raises(DataError, match="no train/ folder"):
        load_dataset(tmp_path / "flat")


def test_unpacked_zip_parent_is_accepted(image_folder, tmp_path):
    parent = tmp_path / "unpacked"
    parent.mkdir()
    shutil.move(str(image_folder), parent / "15SceneData")
    (parent / "__MACOSX").mkdir()
    assert resolve_root(parent) == parent / "15SceneData"


def test_subset_is_balanced_and_deterministic(image_folder):
    ds = load_dataset(image_folder).subset(2)
    assert ds.train.counts() == {"alpha": 2, "beta": 2, "gamma": 2}
    assert ds.train.paths == load_dataset(image_folder).subset(2).train.paths


def test_validation_split_holds_out_the_last_files_of_every_class(image_folder):
    from tplib.data import validation_split

    split = load_dataset(image_folder).train  # 3 classes x 3 files
    train, val = validation_split(split, 0.2)
    assert (len(train), len(val), val.name, train.name) == (6, 3, "val", "train")
    assert set(train.paths).isdisjoint(val.paths)
    assert sorted(train.paths + val.paths) == sorted(split.paths)
    assert train.counts() == {"alpha": 2, "beta": 2, "gamma": 2}
    assert [p.name for p in val.paths] == ["img_2.jpg"] * 3
    assert validation_split(split, 0.2)[1].paths == val.paths  # deterministic
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(OptionError, match="fraction must be in"):
            validation_split(split, bad)
    one_each = validation_split(train, 0.5)[0]  # 1 training file per class left
    with pytest.raises(InputError, match="'alpha' has 1 file"):
        validation_split(one_each, 0.2)
