"""One feature cache for a whole class: read-only class caches (``TPLIB_SHARED_CACHE``).

A kernel reads a feature matrix from a class cache when its key matches, and computes
what is missing into its own cache, saying so; it never writes to, nor removes from, a
class cache, and a damaged or stale class-cache entry is never used.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import tplib
from tplib.data import load_dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _entries(cache: Path) -> list[Path]:
    features = cache / "features"
    return sorted(p for p in features.iterdir() if p.is_dir()) if features.is_dir() else []


@pytest.fixture
def warmed(image_folder, lite0, tmp_path, monkeypatch):
    """(class cache, a student's own cache, the data set, the features as extracted into the class cache)."""
    data = load_dataset(image_folder)
    class_cache, own = tmp_path / "class", tmp_path / "own"
    monkeypatch.setenv("TPLIB_CACHE", str(class_cache))
    reference = tplib.extract_features(lite0, data.train, "pooled", progress=False)
    assert len(_entries(class_cache)) == 1
    monkeypatch.setenv("TPLIB_CACHE", str(own))
    monkeypatch.setenv("TPLIB_SHARED_CACHE", str(class_cache))
    return class_cache, own, data, reference


def _snapshot(folder: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_a_student_reads_the_class_cache_and_writes_nothing(warmed, lite0, caplog):
    class_cache, own, data, reference = warmed
    before = _snapshot(class_cache)
    with caplog.at_level(logging.WARNING, logger="tplib"):
        got = tplib.extract_features(lite0, data.train, "pooled", progress=False)
    assert got.from_cache and Path(got.cache_path).parent == class_cache / "features"
    np.testing.assert_array_equal(got["pooled"], reference["pooled"])
    np.testing.assert_array_equal(got.labels, reference.labels)
    assert _entries(own) == [] and _snapshot(class_cache) == before
    assert not caplog.records


def test_what_the_class_cache_lacks_is_computed_into_the_own_cache_and_said(warmed, lite0, caplog):
    class_cache, own, data, reference = warmed
    before = _snapshot(class_cache)
    with caplog.at_level(logging.WARNING, logger="tplib"):
        test_rows = tplib.extract_features(lite0, data.test, "pooled", progress=False)  # never warmed
    assert not test_rows.from_cache and len(_entries(own)) == 1
    assert any("not in the class cache" in r.getMessage() for r in caplog.records)
    assert _snapshot(class_cache) == before
    again = tplib.extract_features(lite0, data.test, "pooled", progress=False)
    assert again.from_cache and Path(again.cache_path).parent == own / "features"


def test_a_changed_data_set_is_not_read_from_the_class_cache(warmed, lite0, caplog):
    class_cache, own, data, reference = warmed
    first = Path(data.train.paths[0])
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))  # edited since
    with caplog.at_level(logging.WARNING, logger="tplib"):
        got = tplib.extract_features(lite0, data.train, "pooled", progress=False)
    assert not got.from_cache and len(_entries(own)) == 1
    assert any("not in the class cache" in r.getMessage() for r in caplog.records)


def test_a_damaged_class_cache_entry_is_ignored_not_removed(warmed, lite0, caplog):
    class_cache, own, data, reference = warmed
    (entry,) = _entries(class_cache)
    layer_file = entry / "pooled.npy"
    raw = bytearray(layer_file.read_bytes())
    raw[-4:] = b"\x00\x00\x80\x7f"  # the last value becomes +inf: the checksum no longer matches
    layer_file.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="tplib"):
        got = tplib.extract_features(lite0, data.train, "pooled", progress=False)
    assert not got.from_cache and len(_entries(own)) == 1
    np.testing.assert_allclose(got["pooled"], reference["pooled"], rtol=1e-5, atol=1e-6)
    assert entry.is_dir()  # not the student's to remove
    assert any("class cache entry" in r.getMessage() and "damaged" in r.getMessage()
               for r in caplog.records)


@pytest.mark.slow
@pytest.mark.real_data
def test_four_kernels_run_notebook_04_on_one_class_cache(tmp_path, real_data_dir, monkeypatch):
    """The small form of benchmarks/class_cache.py (CI): 4 kernels, the ci profile."""
    from class_cache import measure

    monkeypatch.setenv("TPLIB_REAL_DATA", str(real_data_dir))
    r = measure(4, "ci", REPO / "notebooks" / "04_relu7_svm_15scene.ipynb", None, tmp_path)
    assert r["all_finished"], r["errors"]
    assert r["matrices_in_class_cache"] >= 2  # train and test at least
    assert r["recomputed"] == 0
    assert r["class_cache_unchanged"]
    assert r["same_results"], r["differing_outputs"]
    print(f"4 kernels at once: {r['wall_n'] / r['wall_1']:.2f}x the wall time of 1; "
          f"peak memory {min(r['peak_mb'])}-{max(r['peak_mb'])} MB per kernel")
