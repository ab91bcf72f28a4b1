"""The on-disk feature cache: keyed by everything that changes the numbers.

An entry is a folder ``$TPLIB_CACHE/features/<model>-<key>/`` holding one ``.npy``
per layer (rows of all images, decodable or not), ``meta.json`` (key material,
which rows are valid, skipped files). It is built as ``<entry>.partial/``, rows
written straight into the files; after every batch the files are synced and then
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
        arrays = {layer: _read_rows(entry / f"{layer}.npy", meta["n_rows"], valid)
                  for layer in meta["layers"]}
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
        self._record(start, ok, errors)

    def _record(self, start: int, ok: np.ndarray, errors) -> None:
        """Which rows of the batch at ``start`` are valid, and why the others are not."""
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
    import psutil  # not os.kill(pid, 0): on Windows that terminates the process

    return psutil.pid_exists(pid)


class _RowFile:
    """One layer's ``.npy`` file of shape (n_rows, d), filled row by row with plain writes.

    Not a memory map: mapped pages that were written stay in the process's resident
    memory until unmapped, so a mapped cache would hold every feature row in memory
    during the extraction and then again in the copy returned at the end. Written
    with ``os.pwrite``, the rows go to the page cache (the kernel's, reclaimable) and
    the process holds only the copy it returns.
    """

    def __init__(self, path: Path, n_rows: int, d: int, dtype: np.dtype, create: bool):
        if create:  # writes the header and sizes the (sparse) file
            arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n_rows, d))
        else:
            arr = np.load(path, mmap_mode="r+")
            if arr.shape != (n_rows, d) or arr.dtype != dtype:
                raise ValueError(f"{path.name} has shape {arr.shape}, expected {(n_rows, d)}")
        self.offset = arr.offset
        del arr  # unmapped: nothing of the file stays in this process's memory
        self.row_bytes = d * np.dtype(dtype).itemsize
        self.dtype = np.dtype(dtype)
        self.fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))

    def write(self, idx: np.ndarray, values: np.ndarray) -> None:
        """Rows ``values[j]`` at row ``idx[j]``; consecutive rows in one write."""
        values = np.ascontiguousarray(values, dtype=self.dtype)
        j = 0
        while j < len(idx):
            k = j + 1
            while k < len(idx) and idx[k] == idx[k - 1] + 1:
                k += 1
            data = values[j:k].tobytes()
            at = self.offset + int(idx[j]) * self.row_bytes
            while data:  # pwrite may write less than asked
                written = _pwrite(self.fd, data, at)
                data, at = data[written:], at + written
            j = k

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _pwrite(fd: int, data: bytes, offset: int) -> int:
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows
    return os.write(fd, data)


class DiskWriter(MemoryWriter):
    """Rows written into the ``.npy`` files of a ``.partial`` entry (see :class:`_RowFile`)."""

    def __init__(self, key: str, dims: dict[str, int], n_rows: int, dtype: np.dtype):
        self.key = key
        self.final = entry_path(key)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.entry = None
        self.dims, self.n_rows, self.dtype = dims, n_rows, dtype
        self.valid = np.zeros(n_rows, dtype=bool)
        self.skipped = []
        self.done = 0
        self.files: dict[str, _RowFile] = {}
        try:
            if not self._resume():
                self._start()
            (self.partial / "owner.pid").write_text(str(os.getpid()))
        except BaseException:
            self._close()  # no descriptor left open (on Windows it would lock the files)
            raise

    def __exit__(self, *exc) -> None:
        self._close()

    def _close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files = {}

    def _start(self) -> None:
        self._close()
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        for layer, d in self.dims.items():  # one by one: a failure closes those opened
            self.files[layer] = _RowFile(self.partial / f"{layer}.npy", self.n_rows, d,
                                         self.dtype, create=True)

    def _resume(self) -> bool:
        progress = self.partial / "progress.json"
        if not progress.is_file():
            return False
        try:
            state = json.loads(progress.read_text(encoding="utf-8"))
            for layer, d in self.dims.items():
                self.files[layer] = _RowFile(self.partial / f"{layer}.npy", self.n_rows, d,
                                             self.dtype, create=False)
            self.done = int(state["done"])
            self.valid[: self.done] = True
            self.valid[state["invalid"]] = False
            self.skipped = [tuple(s) for s in state["skipped"]]
        except (OSError, ValueError, KeyError):
            self._close()
            self.done, self.skipped = 0, []
            self.valid[:] = False
            return False
        print(f"Resuming an interrupted extraction at image {self.done:,}/{self.n_rows:,} "
              f"({self.partial})", file=sys.stderr)
        return True

    def write(self, start, rows, ok, errors) -> None:
        idx = start + np.flatnonzero(ok)
        for layer, values in rows.items():
            self.files[layer].write(idx, values)
        for f in self.files.values():
            f.sync()  # rows on disk before progress.json claims them
        self._record(start, ok, errors)
        atomic_write_text(self.partial / "progress.json", json.dumps({
            "done": self.done,
            "invalid": np.flatnonzero(~self.valid[: self.done]).tolist(),
            "skipped": self.skipped,
        }))

    def finish(self):
        if self.done != self.n_rows:
            raise RuntimeError(f"extraction stopped at {self.done}/{self.n_rows} rows")
        for f in self.files.values():
            f.sync()
        self._close()
        meta = {"key": self.key, "n_rows": self.n_rows, "layers": list(self.dims),
                "dims": self.dims, "dtype": str(self.dtype),
                "invalid": np.flatnonzero(~self.valid).tolist(), "skipped": self.skipped}
        atomic_write_text(self.partial / "meta.json", json.dumps(meta))
        for name in ("progress.json", "owner.pid"):
            (self.partial / name).unlink(missing_ok=True)
        if self.final.exists():  # a concurrent run finished the same entry first
            shutil.rmtree(self.partial, ignore_errors=True)
        else:
            os.replace(self.partial, self.final)
        self.entry = self.final
        arrays = {layer: _read_rows(self.final / f"{layer}.npy", self.n_rows, self.valid)
                  for layer in self.dims}
        return arrays, self.valid, self.skipped


def _read_rows(path: Path, n_rows: int, valid: np.ndarray) -> np.ndarray:
    """The valid rows of a finished ``.npy`` file, read into memory (not mapped)."""
    full = np.load(path)
    if full.ndim != 2 or full.shape[0] != n_rows:
        raise ValueError(f"{path.name} has shape {full.shape}, expected {n_rows} rows")
    return full if valid.all() else full[valid]


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
