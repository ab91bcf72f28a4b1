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
The weights are known by their source (``weights_id``) and by their numbers
(:func:`weights_digest`), so a model trained or edited in place gets a new key
instead of the rows of the weights it had before.

Integrity. When an entry is finished, ``meta.json`` records a CRC-32 of every layer
file (header and rows) and how many valid rows hold NaN or infinity. Every read
checks both. CRC-32 (zlib) was the fastest of crc32, adler32, sha1, sha256 and
blake2b measured here; checking it costs about as much as reading the file from disk
and far less than the extraction that a damaged entry would silently replace. An
entry with a wrong checksum, a truncated or missing file, unexpected NaN/inf rows,
a missing or unreadable ``meta.json``, or no checksums (written by an older
tplib) is reported on the ``"tplib"`` logger, removed, and computed again; the new
entry replaces the broken folder. :func:`cache_info` reports such a folder as
``damaged`` (it checks the structure and file sizes, not the checksums: those are
checked when the entry is read).

Class caches. ``$TPLIB_SHARED_CACHE`` names read-only caches laid out like this one
(an instructor warms one for a class with ``tools/warm_class_cache.py``): an entry
missing from the user's cache is read from there when its key matches, with the same
checks. tplib never writes to, nor removes from, a class cache: a missing or damaged
entry there is computed into the user's own cache, and the logger says so.

Failures. A cache folder that cannot be created or written raises
:class:`~tplib.errors.CacheUnavailableError` (a full disk:
:class:`~tplib.errors.DiskFullError`, with the space the entry needs);
:func:`open_writer_or_memory` turns that into an in-memory writer plus the reason,
for callers that carry on without a cache. A run stopped by a full disk leaves a
``.partial`` entry, which resumes; never one that looks finished.

Messages go to ``logging.getLogger("tplib")``; the library never prints.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
import zlib
from pathlib import Path

import numpy as np

from .errors import CacheUnavailableError, DiskFullError
from .fsutil import atomic_write_text
from .paths import feature_cache_dir, shared_feature_dirs

logger = logging.getLogger("tplib")

# Version of the key material (a change gives every entry a new key). 2: the weights'
# digest (weights_digest) joined the key; entries made by version 1 are computed again.
CACHE_VERSION = 2
# Version of meta.json. 2: per-file checksums, NaN/inf counts, creation time and the
# descriptive ``info``. Entries of an older format are treated as damaged and
# recomputed once under the same key (a new CACHE_VERSION would orphan them instead).
META_FORMAT = 2
_CHUNK = 1 << 20
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def files_digest(paths) -> str:
    """SHA-256 over (resolved path, size, mtime_ns) of every file, in order."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        try:
            st = p.stat()
            line = f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n"
        except OSError:
            line = f"{p}\0missing\n"
        # surrogateescape: a file name that is not valid UTF-8 keeps its exact bytes
        h.update(line.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


#: Words of each tensor read into the digest in order (besides the sum over all of them).
_DIGEST_SAMPLES = 16


def weights_digest(model) -> str:
    """SHA-256 over every parameter and buffer of ``model``: name, shape, dtype, the sum
    of its bytes read as 64-bit words (mod 2**64) and a few words at fixed positions.

    The sum changes when any single value changes (each word is a term of it), and
    summing integers is exact, so the digest does not depend on the order of the
    additions, the thread count or the device; the sampled words catch values that
    swapped places. Measured on these 2 cores: VGG16's 138 M parameters (553 MB) in
    0.07-0.16 s, EfficientNet-Lite0 in 0.01-0.04 s (for 400 MB, zlib's CRC-32 took
    0.27 s and torch's integer sum 0.5-0.9 s).
    """
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        tensors = [*model.named_parameters(), *model.named_buffers()]
        for name, t in tensors:
            h.update(f"{name}\0{tuple(t.shape)}\0{t.dtype}\n".encode())
            t = t.detach()
            if t.numel() == 0:
                continue
            if not t.is_contiguous():  # e.g. channels_last weights: the logical order
                t = t.contiguous()
            raw = t.reshape(-1).view(torch.uint8)
            total, sample = _word_sum_and_sample(raw, numpy=t.device.type == "cpu")
            h.update(total.to_bytes(8, "little"))
            h.update(sample)
    return h.hexdigest()


def _word_sum_and_sample(raw, numpy: bool) -> tuple[int, bytes]:
    """(sum mod 2**64 of the 64-bit words of the 1-D uint8 tensor ``raw``, the bytes of
    :data:`_DIGEST_SAMPLES` words at fixed positions and of the bytes after the last word).

    ``numpy``: sum on the CPU with numpy (10x faster than torch's integer sum here);
    otherwise with torch where the tensor lives (a GPU), whose int64 sum wraps around
    like numpy's uint64 one: the same value either way.
    """
    import torch

    n_words = raw.numel() // 8
    k = min(n_words, _DIGEST_SAMPLES)
    positions = [i * (n_words - 1) // max(k - 1, 1) for i in range(k)]
    tail = raw[n_words * 8:].cpu().numpy().tobytes()
    if n_words == 0:
        return 0, tail
    if numpy:
        words = raw.numpy()[: n_words * 8].view(np.uint64)
        return int(words.sum(dtype=np.uint64)), words[positions].tobytes() + tail
    words = raw[: n_words * 8].view(torch.int64)
    picked = words[torch.tensor(positions, dtype=torch.long, device=words.device)]
    return int(words.sum()) % 2**64, picked.cpu().numpy().view(np.uint64).tobytes() + tail


def make_key(backbone, nodes: dict, pool: str, precision: str, device_type: str,
             channels_last: bool, dtype: str, paths, *, fold_bn: bool = False) -> str:
    """Hex key of a feature set (see the module docstring for what it covers)."""
    material = {
        "version": CACHE_VERSION,
        "model": backbone.name,
        "weights_id": backbone.weights_id,
        "weights": weights_digest(backbone.model),
        "layers": nodes,
        "pool": pool,
        "preprocess": backbone.preprocess.key(),
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


class _Damaged(Exception):
    """Why an entry cannot be trusted (internal; becomes a log message)."""


def _npy_header(f) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data offset) of an open ``.npy`` file, or :class:`_Damaged`."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except (ValueError, EOFError, SyntaxError) as exc:
        raise _Damaged(f"{Path(f.name).name} has no valid .npy header ({exc})") from None
    if fortran or dtype.hasobject or len(shape) != 2:
        raise _Damaged(f"{Path(f.name).name} is not a 2-D C-ordered numeric array")
    return shape, dtype, f.tell()


def _check_npy(path: Path, n_rows: int, d: int | None, dtype: np.dtype | None):
    """Open ``path`` and check its header and size; returns (open file, shape, dtype, offset)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise _Damaged(f"{path.name} is missing") from None
    try:
        shape, file_dtype, offset = _npy_header(f)
        if shape[0] != n_rows or (d is not None and shape[1] != d):
            raise _Damaged(f"{path.name} has shape {shape}, expected ({n_rows}, {d})")
        if dtype is not None and file_dtype != dtype:
            raise _Damaged(f"{path.name} holds {file_dtype}, expected {dtype}")
        expected = offset + shape[0] * shape[1] * file_dtype.itemsize
        size = os.fstat(f.fileno()).st_size
        if size != expected:
            what = "truncated" if size < expected else "longer than its header says"
            raise _Damaged(f"{path.name} is {what} ({size:,} of {expected:,} bytes)")
    except BaseException:
        f.close()
        raise
    return f, shape, file_dtype, offset


def _read_checked(path: Path, n_rows: int, d: int, dtype: np.dtype) -> tuple[np.ndarray, str]:
    """The whole array of a layer file (read into memory, not mapped) and its checksum.

    The checksum is CRC-32 over the file's bytes, header included, as "crc32:xxxxxxxx".
    """
    f, shape, file_dtype, offset = _check_npy(path, n_rows, d, dtype)
    with f:
        f.seek(0)
        crc = zlib.crc32(f.read(offset))
        full = np.empty(shape, dtype=file_dtype)
        if full.size == 0:  # an entry of 0 rows (an empty split): nothing after the header
            return full, f"crc32:{crc:08x}"
        view = memoryview(full).cast("B")
        pos = 0
        while pos < len(view):  # in 1 MB pieces, each checksummed while still in the CPU cache
            got = f.readinto(view[pos:pos + _CHUNK])
            if not got:  # the file shrank while we read it
                raise _Damaged(f"{path.name} is truncated ({offset + pos:,} bytes)")
            crc = zlib.crc32(view[pos:pos + got], crc)
            pos += got
    return full, f"crc32:{crc:08x}"


def _nonfinite_rows(rows: np.ndarray) -> int:
    """How many rows hold a NaN or an infinity."""
    return int((~np.isfinite(rows).all(axis=1)).sum()) if rows.size else 0


def _read_meta(entry: Path) -> dict:
    """The finished entry's ``meta.json``, checked for the current format, or :class:`_Damaged`."""
    meta_file = entry / "meta.json"
    try:
        text = meta_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _Damaged("meta.json is missing") from None
    except UnicodeDecodeError as exc:
        raise _Damaged(f"meta.json is unreadable ({exc.reason})") from None
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise _Damaged(f"meta.json is unreadable ({exc})") from None
    if not isinstance(meta, dict):
        raise _Damaged("meta.json is unreadable (not a JSON object)")
    if meta.get("format") != META_FORMAT or not isinstance(meta.get("checksums"), dict):
        raise _Damaged("written by an older tplib, without checksums")
    try:
        n_rows, layers, dims = int(meta["n_rows"]), list(meta["layers"]), dict(meta["dims"])
        np.dtype(meta["dtype"])
        for layer in layers:
            int(dims[layer]), str(meta["checksums"][layer]), int(meta["nonfinite_rows"][layer])
        invalid = [int(i) for i in meta["invalid"]]
        [tuple(s) for s in meta["skipped"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise _Damaged(f"meta.json is unreadable (bad or missing field {exc})") from None
    if any(not 0 <= i < n_rows for i in invalid):
        raise _Damaged("meta.json is unreadable (row index out of range)")
    return meta


def _structure_problem(entry: Path) -> str | None:
    """Why a finished entry looks damaged without reading its rows, or None."""
    try:
        if not entry.is_dir():
            return "not a folder"
        meta = _read_meta(entry)
        for layer in meta["layers"]:
            f, *_ = _check_npy(entry / f"{layer}.npy", int(meta["n_rows"]),
                               int(meta["dims"][layer]), np.dtype(meta["dtype"]))
            f.close()
    except _Damaged as exc:
        return str(exc)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None


def _remove_entry(entry: Path) -> None:
    """Remove a folder of the cache (renamed aside first, so its name is free at once)."""
    aside = entry.with_name(f"{entry.name}.removing-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.replace(entry, aside)
    except OSError:
        aside = entry
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        try:
            aside.unlink()
        except OSError:
            pass


def _drop_damaged(entry: Path, reason: str) -> None:
    logger.warning(f"feature cache entry {entry} is damaged ({reason}); removing it and "
                   "computing the features again")
    _remove_entry(entry)


def load(key: str):
    """(arrays, valid mask, skipped, entry) for a finished, intact entry, or None.

    The user's own cache first, then each read-only class cache of
    ``$TPLIB_SHARED_CACHE`` (:func:`tplib.paths.shared_feature_dirs`). Each layer
    file's checksum and NaN/inf row count are checked against ``meta.json``. A damaged
    entry of the user's cache is reported on the ``"tplib"`` logger and removed; a
    damaged class-cache entry is reported and left alone (it is not the user's to
    remove). None means: compute the rows (into the user's own cache), and when class
    caches are configured, the logger says that they did not hold them.
    """
    hit = _load_entry(entry_path(key), shared=False)
    if hit is not None:
        return hit
    shared = shared_feature_dirs()
    for folder in shared:
        hit = _load_entry(folder / key, shared=True)
        if hit is not None:
            return hit
    if shared:
        logger.warning(f"features {key} are not in the class cache "
                       f"({', '.join(str(f.parent) for f in shared)}): computing them into your own "
                       f"cache {feature_cache_dir()}")
    return None


def _load_entry(entry: Path, shared: bool):
    """:func:`load` for one entry folder; ``shared``: a class cache, never modified."""
    try:
        if not os.path.lexists(entry):
            return None
    except OSError:
        return None
    try:
        meta = _read_meta(entry)
        n_rows, dtype = int(meta["n_rows"]), np.dtype(meta["dtype"])
        valid = np.ones(n_rows, dtype=bool)
        valid[[int(i) for i in meta["invalid"]]] = False
        arrays = {}
        for layer in meta["layers"]:
            full, checksum = _read_checked(entry / f"{layer}.npy", n_rows,
                                           int(meta["dims"][layer]), dtype)
            if checksum != meta["checksums"][layer]:
                raise _Damaged(f"{layer}.npy does not match its checksum: its rows were changed")
            rows = full if valid.all() else full[valid]
            bad, expected = _nonfinite_rows(rows), int(meta["nonfinite_rows"][layer])
            if bad != expected:
                raise _Damaged(f"{layer}.npy has {bad:,} rows with NaN or infinity, "
                               f"meta.json records {expected:,}")
            arrays[layer] = rows
        skipped = [tuple(s) for s in meta["skipped"]]
    except PermissionError as exc:
        logger.warning(f"feature cache entry {entry} cannot be read ({exc.strerror}); "
                       "computing the features again")
        return None
    except (_Damaged, OSError) as exc:
        reason = str(exc) if isinstance(exc, _Damaged) else f"unreadable: {exc.strerror or exc}"
        if shared:
            logger.warning(f"class cache entry {entry} is damaged ({reason}); ignoring it and "
                           "computing the features into your own cache (tell whoever warmed it)")
        else:
            _drop_damaged(entry, reason)
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

    def finish(self, info: dict | None = None):
        """(arrays with only the valid rows, valid mask, skipped); ``info`` is not kept."""
        if self.valid.all():
            return self.arrays, self.valid, self.skipped
        return ({k: v[self.valid] for k, v in self.arrays.items()}, self.valid, self.skipped)


def _whole(value) -> int | None:
    """A JSON value that is a whole number >= 0, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _read_progress(partial: Path, n_rows: int | None = None) -> tuple[int, int, list[int], list[tuple]]:
    """(rows done, rows in all, invalid row indices, skipped files) of a ``.partial`` entry's
    ``progress.json``, or :class:`_Damaged` saying why it cannot be trusted.

    ``n_rows``: the rows the caller expects (None: the file's own count is checked).
    """
    try:
        state = json.loads((partial / "progress.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _Damaged("progress.json is missing") from None
    except (ValueError, OSError) as exc:  # UnicodeDecodeError is a ValueError
        raise _Damaged(f"progress.json is unreadable ({exc})") from None
    if not isinstance(state, dict):
        raise _Damaged("progress.json is unreadable (not a JSON object)")
    done, total = _whole(state.get("done")), _whole(state.get("n_rows"))
    invalid, skipped = state.get("invalid"), state.get("skipped")
    if done is None or total is None or done > total or (n_rows is not None and total != n_rows):
        raise _Damaged(f"progress.json has no usable row counts (done {state.get('done')!r}, "
                       f"n_rows {state.get('n_rows')!r})")
    if (not isinstance(invalid, list) or any(_whole(i) is None or i >= done for i in invalid)
            or not isinstance(skipped, list)
            or any(not isinstance(x, list) or len(x) != 2 for x in skipped)):
        raise _Damaged("progress.json has no usable list of skipped rows")
    return done, total, invalid, [tuple(x) for x in skipped]


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
    """Rows written into the ``.npy`` files of a ``.partial`` entry (see :class:`_RowFile`).

    :meth:`write` and :meth:`finish` turn an ``OSError`` into
    :class:`~tplib.errors.DiskFullError` (no space left) or
    :class:`~tplib.errors.CacheUnavailableError` (any other write failure); the
    ``.partial`` entry stays, and resumes from its last recorded batch.
    """

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
        if not (self.partial / "progress.json").is_file():
            return False
        try:
            done, _, invalid, skipped = _read_progress(self.partial, self.n_rows)
            for layer, d in self.dims.items():
                self.files[layer] = _RowFile(self.partial / f"{layer}.npy", self.n_rows, d,
                                             self.dtype, create=False)
        except (_Damaged, OSError, ValueError) as exc:
            self._close()
            logger.warning(f"cannot resume the interrupted extraction in {self.partial} ({exc}); "
                           "starting it again")
            return False
        self.done, self.skipped = done, skipped
        self.valid[: self.done] = True
        self.valid[invalid] = False
        logger.warning(f"Resuming an interrupted extraction at image {self.done:,}/{self.n_rows:,} "
                       f"({self.partial})")
        return True

    def needed_bytes(self) -> int:
        """Disk space of the entry's rows: n_rows x sum(dims) x itemsize."""
        return self.n_rows * sum(self.dims.values()) * np.dtype(self.dtype).itemsize

    def _error(self, exc: OSError) -> CacheUnavailableError:
        return cache_write_error(exc, self.partial.parent, self.needed_bytes(),
                                 self.n_rows, sum(self.dims.values()), np.dtype(self.dtype).itemsize)

    def write(self, start, rows, ok, errors) -> None:
        idx = start + np.flatnonzero(ok)
        try:
            for layer, values in rows.items():
                self.files[layer].write(idx, values)
            for f in self.files.values():
                f.sync()  # rows on disk before progress.json claims them
            self._record(start, ok, errors)
            atomic_write_text(self.partial / "progress.json", json.dumps({
                "done": self.done,
                "n_rows": self.n_rows,
                "invalid": np.flatnonzero(~self.valid[: self.done]).tolist(),
                "skipped": self.skipped,
            }))
        except OSError as exc:
            raise self._error(exc) from exc

    def finish(self, info: dict | None = None):
        """Seal the entry: checksums into ``meta.json``, then rename it into place.

        ``info``: optional JSON-serialisable fields stored in ``meta.json`` under
        ``"info"`` for :func:`cache_info` (see :func:`entry_info`: model, layers,
        pooling, data folder...). Returns (arrays with only the valid rows, valid
        mask, skipped), read back from the files that were checksummed.
        """
        if self.done != self.n_rows:
            raise RuntimeError(f"extraction stopped at {self.done}/{self.n_rows} rows")
        try:
            for f in self.files.values():
                f.sync()
            self._close()
            arrays, checksums, nonfinite = {}, {}, {}
            for layer, d in self.dims.items():
                full, checksums[layer] = _read_checked(self.partial / f"{layer}.npy",
                                                       self.n_rows, d, np.dtype(self.dtype))
                arrays[layer] = full if self.valid.all() else full[self.valid]
                nonfinite[layer] = _nonfinite_rows(arrays[layer])
            meta = {"format": META_FORMAT, "key": self.key, "n_rows": self.n_rows,
                    "layers": list(self.dims), "dims": self.dims, "dtype": str(self.dtype),
                    "invalid": np.flatnonzero(~self.valid).tolist(), "skipped": self.skipped,
                    "checksums": checksums, "nonfinite_rows": nonfinite,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "info": dict(info or {})}
            atomic_write_text(self.partial / "meta.json", json.dumps(meta, default=str))
            for name in ("progress.json", "owner.pid"):
                (self.partial / name).unlink(missing_ok=True)
            self._install()
        except _Damaged as exc:  # the files changed under us between sync and read-back
            shutil.rmtree(self.partial, ignore_errors=True)  # else every run would resume it
            raise CacheUnavailableError(
                f"feature cache entry {self.partial} changed while it was sealed ({exc}); "
                "run again (it is recomputed)") from None
        except OSError as exc:
            raise self._error(exc) from exc
        self.entry = self.final
        return arrays, self.valid, self.skipped

    def _install(self) -> None:
        """Rename the sealed ``.partial`` folder to the entry's name.

        A finished entry already there (a concurrent run of the same extraction) is
        kept and ours dropped; a damaged folder of that name is replaced.
        """
        if os.path.lexists(self.final):
            problem = _structure_problem(self.final)
            if problem is None:
                shutil.rmtree(self.partial, ignore_errors=True)
                return
            logger.warning(f"feature cache entry {self.final} is damaged ({problem}); "
                           "replacing it with the one just computed")
            _remove_entry(self.final)
        try:
            os.replace(self.partial, self.final)
        except OSError:
            if os.path.lexists(self.final) and _structure_problem(self.final) is None:
                shutil.rmtree(self.partial, ignore_errors=True)  # a concurrent run won
                return
            raise


def cache_write_error(exc: OSError, folder: Path, needed: int | None = None, n_rows: int = 0,
                      width: int = 0, itemsize: int = 0) -> CacheUnavailableError:
    """The one-line :class:`CacheUnavailableError` (or :class:`DiskFullError`) for ``exc``."""
    reason = exc.strerror or str(exc)
    if exc.errno in _DISK_FULL:
        need = (f"this entry needs {_human(needed)} ({n_rows:,} images x {width:,} values x "
                f"{itemsize} bytes); " if needed else "")
        return DiskFullError(
            f"no space left on the disk of the feature cache {folder}: {need}free some space "
            "(tplib cache clear), set TPLIB_CACHE to a folder on a larger disk, or run without "
            "the cache (--no-cache, cache=False)")
    return CacheUnavailableError(
        f"cannot write the feature cache in {folder} ({reason}): set TPLIB_CACHE to a writable "
        "folder, or run without the cache (--no-cache, cache=False)")


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def open_writer(key: str, dims: dict[str, int], n_rows: int, dtype: np.dtype) -> MemoryWriter:
    """A :class:`DiskWriter`, or a :class:`MemoryWriter` if another live process owns the entry.

    Raises :class:`~tplib.errors.CacheUnavailableError` (naming the folder) when the
    cache folder cannot be created or written: read-only, ``TPLIB_CACHE`` naming a
    file, no permission; :class:`~tplib.errors.DiskFullError` when the disk is full.
    """
    folder = feature_cache_dir()
    partial = folder / (key + ".partial")
    owner = partial / "owner.pid"
    try:
        pid = int(owner.read_text())
    except (OSError, ValueError):
        pid = None
    if pid is not None and _pid_alive(pid):
        logger.warning(f"another process (pid {pid}) is extracting the same features into "
                       f"{partial}; computing without the cache")
        return MemoryWriter(dims, n_rows, dtype)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return DiskWriter(key, dims, n_rows, dtype)
    except OSError as exc:
        width, itemsize = sum(dims.values()), np.dtype(dtype).itemsize
        raise cache_write_error(exc, folder, n_rows * width * itemsize, n_rows, width,
                                itemsize) from exc


def open_writer_or_memory(key: str, dims: dict[str, int], n_rows: int,
                          dtype: np.dtype) -> tuple[MemoryWriter, str | None]:
    """(writer, None) as :func:`open_writer`, or (:class:`MemoryWriter`, reason) when the
    cache cannot be written: for extraction code that carries on without a cache.

    ``reason`` is the one-line message of the :class:`~tplib.errors.CacheUnavailableError`;
    nothing is logged here, the caller reports it (e.g. in the run's warnings).
    """
    try:
        return open_writer(key, dims, n_rows, dtype), None
    except CacheUnavailableError as exc:
        return MemoryWriter(dims, n_rows, dtype), str(exc)


def common_folder(paths) -> str | None:
    """The deepest folder holding every file of ``paths`` (absolute, not resolved), or None."""
    parents = {os.path.dirname(os.path.abspath(p)) for p in paths}
    if not parents:
        return None
    try:
        return os.path.commonpath(sorted(parents))
    except ValueError:  # files on different drives (Windows)
        return None


def entry_info(model: str, layers, pool: str, paths, **extra) -> dict:
    """The ``info`` for :meth:`DiskWriter.finish`: what :func:`cache_info` shows of an entry.

    ``layers``: friendly names, or {friendly name: module name}; ``paths``: the image
    files (their common folder is stored, not the list). ``extra``: any other
    JSON-serialisable fields (precision, dtype...).
    """
    return {"model": model, "layers": list(layers), "pool": pool,
            "data_folder": common_folder(paths), **extra}


def _folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def cache_info() -> list[dict]:
    """One dict per folder of the feature cache, sorted by name.

    Keys: ``name``, ``path``, ``state`` ("complete", "partial" or "damaged"),
    ``problem`` (why it is damaged, else ""), ``model``, ``layers`` (list of names),
    ``pooling``, ``data_folder`` (common folder of the images), ``n_images``,
    ``done`` (rows written, for partial entries), ``bytes``, ``created`` (ISO 8601
    UTC, when the entry was finished). Unknown values are None (entries finished
    without ``info`` have no pooling or data folder). A complete entry's checksums
    are verified when it is read, not here: "complete" means its structure and
    file sizes are right.
    """
    root = feature_cache_dir()
    try:
        folders = sorted(e for e in root.iterdir() if e.is_dir())
    except OSError:  # missing, or not a folder
        return []
    out = []
    for entry in folders:
        name = entry.name
        d = {"name": name, "path": str(entry), "state": "complete", "problem": "",
             "model": None, "layers": None, "pooling": None, "data_folder": None,
             "n_images": None, "done": None, "bytes": _folder_bytes(entry), "created": None}
        key = name[: -len(".partial")] if name.endswith(".partial") else name
        if "-" in key and ".removing-" not in key:
            d["model"] = key.rsplit("-", 1)[0]
        if name.endswith(".partial"):
            d["state"] = "partial"
            try:
                d["done"], d["n_images"], *_ = _read_progress(entry)
            except _Damaged as exc:  # the next run of the same extraction starts it again
                d["done"] = 0
                if (entry / "progress.json").exists():  # none yet: no batch finished
                    d["problem"] = f"{exc}: the next run starts it again"
        elif ".removing-" in name:
            d["state"], d["problem"] = "damaged", "left over from an interrupted removal"
        else:
            problem = _structure_problem(entry)
            if problem:
                d["state"], d["problem"] = "damaged", problem
            else:
                meta = _read_meta(entry)
                info = meta.get("info") if isinstance(meta.get("info"), dict) else {}
                d.update(model=info.get("model") or d["model"], layers=list(meta["layers"]),
                         pooling=info.get("pool"), data_folder=info.get("data_folder"),
                         n_images=int(meta["n_rows"]), created=meta.get("created"))
        out.append(d)
    return out


def clear_cache() -> int:
    """Delete every feature-cache entry; returns the number of bytes freed."""
    freed = sum(e["bytes"] for e in cache_info())
    shutil.rmtree(feature_cache_dir(), ignore_errors=True)
    return freed


def check_writable() -> None:
    """Raise :class:`~tplib.errors.CacheUnavailableError` now if the cache cannot be written.

    For runs that must not carry on without a cache (``tplib run --strict``): the
    problem is found before any image is decoded.
    """
    import tempfile

    folder = feature_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise cache_write_error(exc, folder) from exc
