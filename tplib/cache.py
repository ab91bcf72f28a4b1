"""The on-disk feature cache: keyed by everything that changes the numbers.

An entry is a folder ``$TPLIB_CACHE/features/<model>-<key>/`` holding one ``.npy``
per layer (rows of all images, decodable or not), ``meta.json`` (key material,
which rows are valid, skipped files). It is built as ``<entry>.partial/`` with
memory-mapped arrays; after every batch the arrays are flushed and then
``progress.json`` is replaced atomically, so a run stopped by Ctrl-C or a kill
resumes from the last recorded row and never reads rows that were not flushed. The
finished folder is renamed into place in one ``os.replace``: a reader sees a whole
entry or none.

The key covers the model and its weights, the layers and their module names,
pooling, preprocessing, precision, device type, memory format, BatchNorm folding,
storage dtype, and every image file's resolved path, size and modification time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

from .fsutil import atomic_write_text
from .paths import feature_cache_dir

CACHE_VERSION = 1


def files_digest(paths) -> str:
    """SHA-256 over (resolved path, size, mtime_ns) of every file, in order."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        try:
            st = p.stat()
            h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


def make_key(backbone, nodes: dict, pool: str, precision: str, device_type: str,
             channels_last: bool, dtype: str, paths, *, fold_bn: bool = False) -> str:
    """Hex key of a feature set (see the module docstring for what it covers)."""
    material = {
        "version": CACHE_VERSION,
        "model": backbone.name,
        "weights_id": backbone.weights_id,
        "layers": nodes,
        "pool": pool,
        "preprocess": dataclasses.asdict(backbone.preprocess),
        "precision": precision,
        "device_type": device_type,
        "channels_last": channels_last,
        "fold_bn": fold_bn,
        "dtype": dtype,
        "n_files": len(paths),
        "files": files_digest(paths),
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return f"{backbone.name}-{digest[:24]}"


def entry_path(key: str) -> Path:
    return feature_cache_dir() / key


def load(key: str):
    """(arrays, valid mask, skipped, entry) for a finished entry, or None."""
    entry = entry_path(key)
    meta_file = entry / "meta.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        valid = np.ones(meta["n_rows"], dtype=bool)
        valid[meta["invalid"]] = False
        arrays = {}
        for layer in meta["layers"]:
            full = np.load(entry / f"{layer}.npy", mmap_mode="r")
            if full.shape[0] != meta["n_rows"]:
                raise ValueError(f"{layer}.npy has {full.shape[0]} rows, expected {meta['n_rows']}")
            arrays[layer] = np.ascontiguousarray(full[valid]) if not valid.all() else np.array(full)
        skipped = [tuple(s) for s in meta["skipped"]]
    except (OSError, ValueError, KeyError) as exc:
        # An entry is only renamed into place when complete, so this means someone
        # edited or damaged it: drop it and recompute rather than trust it.
        warnings.warn(f"feature cache entry {entry} is damaged ({exc}); recomputing", stacklevel=3)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return arrays, valid, skipped, entry


class MemoryWriter:
    """Rows written straight into preallocated in-memory arrays (no cache)."""

    entry = None

    def __init__(self, dims: dict[str, int], n_rows: int, dtype: np.dtype):
        self.arrays = {layer: np.empty((n_rows, d), dtype=dtype) for layer, d in dims.items()}
        self.valid = np.zeros(n_rows, dtype=bool)
        self.skipped: list[tuple[str, str]] = []
        self.done = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def write(self, start: int, rows: dict, ok: np.ndarray, errors) -> None:
        """Rows of the decodable images of one batch; ``ok`` marks them in the batch."""
        idx = start + np.flatnonzero(ok)
        for layer, values in rows.items():
            self.arrays[layer][idx] = values
        self.valid[start:start + len(ok)] = ok
        self.skipped.extend(errors)
        self.done = start + len(ok)

    def finish(self):
        """(arrays with only the valid rows, valid mask, skipped)."""
        if self.valid.all():
            return self.arrays, self.valid, self.skipped
        return ({k: v[self.valid] for k, v in self.arrays.items()}, self.valid, self.skipped)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier call in this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DiskWriter(MemoryWriter):
    """Rows written into memory-mapped ``.npy`` files of a ``.partial`` entry."""

    def __init__(self, key: str, dims: dict[str, int], n_rows: int, dtype: np.dtype):
        self.key = key
        self.final = entry_path(key)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.entry = None
        self.dims, self.n_rows, self.dtype = dims, n_rows, dtype
        self.valid = np.zeros(n_rows, dtype=bool)
        self.skipped = []
        self.done = 0
        if not self._resume():
            self._start()
        (self.partial / "owner.pid").write_text(str(os.getpid()))

    def _start(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        self.arrays = {
            layer: np.lib.format.open_memmap(self.partial / f"{layer}.npy", mode="w+",
                                             dtype=self.dtype, shape=(self.n_rows, d))
            for layer, d in self.dims.items()
        }

    def _resume(self) -> bool:
        progress = self.partial / "progress.json"
        if not progress.is_file():
            return False
        try:
            state = json.loads(progress.read_text(encoding="utf-8"))
            self.arrays = {}
            for layer, d in self.dims.items():
                arr = np.load(self.partial / f"{layer}.npy", mmap_mode="r+")
                if arr.shape != (self.n_rows, d) or arr.dtype != self.dtype:
                    return False
                self.arrays[layer] = arr
            self.done = int(state["done"])
            self.valid[: self.done] = True
            self.valid[state["invalid"]] = False
            self.skipped = [tuple(s) for s in state["skipped"]]
        except (OSError, ValueError, KeyError):
            return False
        print(f"Resuming an interrupted extraction at image {self.done:,}/{self.n_rows:,} "
              f"({self.partial})", file=sys.stderr)
        return True

    def write(self, start, rows, ok, errors) -> None:
        super().write(start, rows, ok, errors)
        for arr in self.arrays.values():
            arr.flush()  # rows on disk before progress.json claims them
        atomic_write_text(self.partial / "progress.json", json.dumps({
            "done": self.done,
            "invalid": np.flatnonzero(~self.valid[: self.done]).tolist(),
            "skipped": self.skipped,
        }))

    def finish(self):
        if self.done != self.n_rows:
            raise RuntimeError(f"extraction stopped at {self.done}/{self.n_rows} rows")
        for arr in self.arrays.values():
            arr.flush()
        meta = {"key": self.key, "n_rows": self.n_rows, "layers": list(self.dims),
                "dims": self.dims, "dtype": str(self.dtype),
                "invalid": np.flatnonzero(~self.valid).tolist(), "skipped": self.skipped}
        atomic_write_text(self.partial / "meta.json", json.dumps(meta))
        for name in ("progress.json", "owner.pid"):
            (self.partial / name).unlink(missing_ok=True)
        arrays = {k: np.array(v) for k, v in self.arrays.items()}
        self.arrays = {}
        if self.final.exists():  # a concurrent run finished the same entry first
            shutil.rmtree(self.partial, ignore_errors=True)
        else:
            os.replace(self.partial, self.final)
        self.entry = self.final
        valid = self.valid
        if not valid.all():
            arrays = {k: v[valid] for k, v in arrays.items()}
        return arrays, valid, self.skipped


def open_writer(key: str, dims: dict[str, int], n_rows: int, dtype: np.dtype) -> MemoryWriter:
    """A :class:`DiskWriter`, or a :class:`MemoryWriter` if another live process owns the entry."""
    partial = entry_path(key).with_name(key + ".partial")
    owner = partial / "owner.pid"
    try:
        pid = int(owner.read_text())
    except (OSError, ValueError):
        pid = None
    if pid is not None and _pid_alive(pid):
        warnings.warn(f"another process (pid {pid}) is extracting the same features into "
                      f"{partial}; computing without the cache", stacklevel=3)
        return MemoryWriter(dims, n_rows, dtype)
    feature_cache_dir().mkdir(parents=True, exist_ok=True)
    return DiskWriter(key, dims, n_rows, dtype)


def cache_info() -> list[dict]:
    """One dict per entry (finished or partial): name, size in bytes, state."""
    root = feature_cache_dir()
    if not root.is_dir():
        return []
    out = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            continue
        size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        out.append({"name": entry.name, "bytes": size,
                    "state": "partial" if entry.name.endswith(".partial") else "complete"})
    return out


def clear_cache() -> int:
    """Delete every feature-cache entry; returns the number of bytes freed."""
    freed = sum(e["bytes"] for e in cache_info())
    shutil.rmtree(feature_cache_dir(), ignore_errors=True)
    return freed
