"""Tests for the generated 15 Scene stand-in and for the odd-image test helper."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tplib.catalog import KNOWN_DATASETS
from tplib.synthetic import (
    LONG_SIDE,
    MARKER_NAME,
    SHORT_SIDE,
    generate_scene_standin,
    read_marker,
)

SCENE_CLASSES = KNOWN_DATASETS["15scene"].classes

try:
    from oddimages import make_odd_images, make_stray_files, pil_can_load
except ImportError:  # tests/ turned into a package: import it as one
    from tests.oddimages import make_odd_images, make_stray_files, pil_can_load


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` keyed by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A 3 train + 2 test stand-in shared by the read-only tests."""
    return generate_scene_standin(tmp_path_factory.mktemp("gen") / "scene", n_train=3, n_test=2, seed=0)


def test_layout_and_counts(small: Path) -> None:
    for split, numbers in (("train", [1, 2, 3]), ("test", [4, 5])):
        assert sorted(p.name for p in (small / split).iterdir()) == sorted(SCENE_CLASSES)
        for cls in SCENE_CLASSES:
            names = sorted(p.name for p in (small / split / cls).iterdir())
            # Numbering continues from train into test, 4 digits, like the real set.
            assert names == [f"image_{n:04d}.jpg" for n in numbers]


def test_images_are_grayscale_jpegs_of_realistic_sizes(small: Path) -> None:
    orientations = set()
    for path in small.rglob("*.jpg"):
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.mode == "L", path
            short, long = sorted(img.size)
            orientations.add(img.width >= img.height)
        assert SHORT_SIDE[0] <= short <= SHORT_SIDE[1], (path, img.size)
        assert LONG_SIDE[0] <= long <= LONG_SIDE[1], (path, img.size)
    assert orientations == {True, False}, "expected both landscape and portrait images"


def test_marker_says_generated(small: Path) -> None:
    text = (small / MARKER_NAME).read_text(encoding="utf-8")
    assert "GENERATED" in text and "NOT THE REAL 15 SCENE" in text
    assert re.search(r"seed: 0\b", text)
    params = read_marker(small)
    assert params is not None
    assert (params["seed"], params["n_train"], params["n_test"]) == (0, 3, 2)
    assert params["classes"] == list(SCENE_CLASSES)


def test_no_temporary_folder_left(small: Path) -> None:
    assert [p.name for p in small.parent.iterdir()] == [small.name]


def test_deterministic_bytes(small: Path, tmp_path: Path) -> None:
    other = generate_scene_standin(tmp_path / "again", n_train=3, n_test=2, seed=0)
    assert _files(other) == _files(small)


def test_other_seed_gives_other_images(small: Path, tmp_path: Path) -> None:
    other = generate_scene_standin(tmp_path / "s1", n_train=3, n_test=2, seed=1, classes=SCENE_CLASSES[:2])
    a = (small / "train" / "bedroom" / "image_0001.jpg").read_bytes()
    assert (other / "train" / "bedroom" / "image_0001.jpg").read_bytes() != a


def test_second_call_is_a_no_op(tmp_path: Path) -> None:
    root = generate_scene_standin(tmp_path / "scene", n_train=1, n_test=1, classes=SCENE_CLASSES[:2])
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert generate_scene_standin(tmp_path / "scene", n_train=1, n_test=1, classes=SCENE_CLASSES[:2]) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


@pytest.mark.parametrize(
    "changed", [{"seed": 1}, {"n_train": 2}, {"n_test": 2}, {"classes": SCENE_CLASSES[:3]}]
)
def test_mismatched_parameters_raise(tmp_path: Path, changed: dict) -> None:
    kwargs = {"n_train": 1, "n_test": 1, "seed": 0, "classes": SCENE_CLASSES[:2]}
    root = generate_scene_standin(tmp_path / "scene", **kwargs)
    with pytest.raises(ValueError, match=re.escape(str(root))):
        generate_scene_standin(root, **{**kwargs, **changed})


def test_refuses_to_overwrite_a_folder_without_marker(tmp_path: Path) -> None:
    real = tmp_path / "scene"
    (real / "train" / "coast").mkdir(parents=True)
    with pytest.raises(ValueError, match="scene"):
        generate_scene_standin(real, n_train=1, n_test=1)
    assert not (real / MARKER_NAME).exists()


def _load_32(root: Path, split: str, classes) -> tuple[np.ndarray, np.ndarray]:
    """Images resized to 32x32 and flattened, with their class indices."""
    X, y = [], []
    for k, cls in enumerate(classes):
        for path in sorted((root / split / cls).glob("*.jpg")):
            with Image.open(path) as img:
                X.append(np.asarray(img.resize((32, 32)), np.float32).ravel() / 255.0)
            y.append(k)
    return np.stack(X), np.array(y)


def test_classes_are_learnable_but_not_trivial(tmp_path: Path) -> None:
    classes = SCENE_CLASSES[:5]
    root = generate_scene_standin(tmp_path / "scene", n_train=20, n_test=10, seed=0, classes=classes)
    X_train, y_train = _load_32(root, "train", classes)
    X_test, y_test = _load_32(root, "test", classes)

    # Nearest centroid in raw pixel space: no sklearn needed, nothing to tune.
    centroids = np.stack([X_train[y_train == k].mean(axis=0) for k in range(len(classes))])
    dists = ((X_test[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    accuracy = float((dists.argmin(axis=1) == y_test).mean())
    assert accuracy > 0.5, f"chance is 0.2, got {accuracy:.2f}"
    assert accuracy < 1.0, "raw pixels should not separate the classes perfectly"

    # Images of one class must really differ from each other, not be copies of a template.
    for k in range(len(classes)):
        same = X_train[y_train == k]
        spread = np.abs(same - same.mean(axis=0)).mean()
        assert spread > 0.03, (classes[k], spread)


def test_odd_images_match_pil(tmp_path: Path) -> None:
    expected = make_odd_images(tmp_path)
    assert sorted(expected) == sorted(p.name for p in tmp_path.iterdir())
    assert any(expected.values()) and not all(expected.values())
    mismatches = {name: want for name, want in expected.items() if pil_can_load(tmp_path / name) != want}
    assert not mismatches, f"PIL disagrees with the expectations for {mismatches}"


def test_odd_images_details(tmp_path: Path) -> None:
    make_odd_images(tmp_path)
    from PIL import ImageOps

    with Image.open(tmp_path / "exif_orientation_6.jpg") as img:
        assert img.size == (40, 20)
        assert ImageOps.exif_transpose(img).size == (20, 40)
    with Image.open(tmp_path / "gray16_I16.png") as img:
        values = np.asarray(img)
        assert values.min() == 0 and values.max() == 65535
    with Image.open(tmp_path / "png_content_named.jpg") as img:
        assert img.format == "PNG"
    assert (tmp_path / "empty.jpg").stat().st_size == 0


def test_stray_files(tmp_path: Path) -> None:
    names = make_stray_files(tmp_path)
    assert set(names) == {".DS_Store", "Thumbs.db", "README.txt", "notes.md", ".ipynb_checkpoints/x.jpg"}
    for name in names:
        assert (tmp_path / name).is_file()
    # The hidden checkpoint image is valid: a loader must skip it for its folder, not its bytes.
    assert pil_can_load(tmp_path / ".ipynb_checkpoints" / "x.jpg")


def test_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tplib.synthetic as synthetic

    calls = []

    def broken(k, rng):
        calls.append(k)
        if len(calls) > 3:
            raise RuntimeError("disk full (simulated)")
        return Image.new("L", (220, 200))

    monkeypatch.setattr(synthetic, "render_image", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        generate_scene_standin(tmp_path / "scene", n_train=2, n_test=1, classes=SCENE_CLASSES[:3])
    # Neither a half-filled target nor the temporary folder survives.
    assert list(tmp_path.iterdir()) == []
