"""The data set records (tplib.catalog): each fact written once, read the same way everywhere."""
import dataclasses
import inspect
import zipfile

import pytest
from PIL import Image

from tplib.catalog import DEFAULT_DATASET, KNOWN_DATASETS, downloadable, get_record
from tplib.cli import build_parser, main
from tplib.datasets import find_dataset
from tplib.download import git_blob_sha1
from tplib.errors import DataError
from tplib.paths import data_cache_dir
from tplib.profile import CI_DEFAULT_SUBSET, PROFILES
from tplib.registry import DEFAULT_NETWORK, NETWORKS
from tplib.synthetic import generate_scene_standin, read_marker


def test_the_records_hold_the_course_facts():
    scene = KNOWN_DATASETS["15scene"]
    assert DEFAULT_DATASET == "15scene"
    assert (scene.title, scene.folder, len(scene.classes)) == ("15 Scene", "15SceneData", 15)
    assert scene.classes == tuple(sorted(scene.classes)) and scene.classes[-1] == "tallbuilding"
    assert scene.resource.filename == "15ScenesData.zip" and scene.resource.size == 86_520_868
    assert scene.resource.check == ("git-blob-sha1", "2d560c33ccbddb036071cae557d89229d744cc1c")
    assert scene.resource.url.endswith("/data/3-a/15ScenesData.zip")
    assert (scene.train_per_class, scene.ci_subset, scene.can_generate) == (100, (20, 20), True)
    for name, record in KNOWN_DATASETS.items():
        assert record.name == name and record.classes == tuple(sorted(set(record.classes)))


def test_an_unknown_name_lists_the_known_ones():
    assert get_record("catsdogs") is KNOWN_DATASETS["catsdogs"]
    with pytest.raises(DataError, match="unknown data set 'scenes'. Known names: 15scene, catsdogs, pets"):
        get_record("scenes")


def test_the_ci_profile_takes_each_records_subset():
    ci = PROFILES["ci"]
    for name, record in KNOWN_DATASETS.items():
        assert ci.subset_for(name) == (record.ci_subset or CI_DEFAULT_SUBSET)
    assert ci.subset_for("catsdogs") == (100, 50) and ci.subset_for("pets") == CI_DEFAULT_SUBSET
    assert PROFILES["full"].subset_for("15scene") is None


def test_tplib_fetch_offers_the_records_with_an_archive_and_the_labs_network(capsys):
    assert downloadable() == ("15scene",)
    parser = build_parser()
    fetchable = [n for n, spec in NETWORKS.items() if spec.needs_download]
    for what in (*downloadable(), *fetchable, "all"):
        assert parser.parse_args(["fetch", what]).what == what
    for refused in ("catsdogs", "pets", "efficientnet_lite0"):  # no archive; a package
        with pytest.raises(SystemExit):
            parser.parse_args(["fetch", refused])
        assert f"invalid choice: '{refused}'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["fetch", "--help"])
    assert f"all = 15scene and {DEFAULT_NETWORK}" in capsys.readouterr().out


def _course_zip(path, folder, classes):
    """A small zip laid out like the course's: ``<folder>/{train,test}/<class>/image_NNNN.jpg``."""
    with zipfile.ZipFile(path, "w") as z:
        for split in ("train", "test"):
            for k, cls in enumerate(classes):
                image = path.parent / f"{split}-{cls}.jpg"
                Image.new("L", (24, 16), 10 * k).save(image)
                z.write(image, f"{folder}/{split}/{cls}/image_0001.jpg")
                image.unlink()
    return path


def test_tplib_fetch_unpacks_the_records_archive_where_find_dataset_looks(tmp_path, monkeypatch, capsys):
    """The record's archive, verified by its checksum, unpacks to the record's folder."""
    scene = KNOWN_DATASETS["15scene"]
    cache = data_cache_dir()
    cache.mkdir(parents=True)
    zpath = _course_zip(cache / scene.resource.filename, scene.folder, scene.classes[:2])
    placed = dataclasses.replace(scene.resource, url="http://127.0.0.1:9/never-asked.zip",
                                 size=zpath.stat().st_size, check=("git-blob-sha1", git_blob_sha1(zpath)))
    monkeypatch.setitem(KNOWN_DATASETS, "15scene", dataclasses.replace(scene, resource=placed))
    assert main(["fetch", "15scene"]) == 0
    assert capsys.readouterr().out.strip() == f"15scene: {zpath} (verified)"
    ds = find_dataset("15scene", profile=PROFILES["full"], download=False)
    assert (ds.root, ds.source) == (cache / scene.folder, "cache")
    assert (ds.name, ds.title, ds.classes) == ("15scene", "15 Scene", list(scene.classes[:2]))


def test_the_stand_in_copies_the_records_classes_and_protocol(tmp_path):
    scene = KNOWN_DATASETS["15scene"]
    defaults = inspect.signature(generate_scene_standin).parameters
    assert defaults["n_train"].default == scene.train_per_class
    assert defaults["classes"].default == scene.classes
    root = generate_scene_standin(tmp_path / "standin", n_train=1, n_test=1)
    assert read_marker(root)["classes"] == list(scene.classes)
    assert sorted(p.name for p in (root / "train").iterdir()) == list(scene.classes)


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["15scene", "catsdogs"])
def test_the_real_data_has_the_records_classes(real_data_dir, name):
    record = KNOWN_DATASETS[name]
    root = real_data_dir / record.folder
    for split in ("train", "test"):
        assert sorted(p.name for p in (root / split).iterdir() if p.is_dir()) == list(record.classes)
    if record.train_per_class is not None:
        for cls in record.classes:
            assert len(list((root / "train" / cls).glob("*.jpg"))) == record.train_per_class
