"""Download the lab's two big files once, check them, and unpack archives safely.

A :class:`Resource` holds everything needed to get a file and to recognise it: its
URL, the file name to use on disk, its exact size and a checksum. The data sets'
resources are in their records (:data:`tplib.catalog.KNOWN_DATASETS`), the networks'
weights come from the network registry (:func:`tplib.models.weights_resource`).
The same check is applied whether the file was downloaded by
:func:`fetch` or put in place by hand (the usual way to work without network),
so a file that verifies is used as is, wherever it came from.

Guarantees:

- **Idempotent.**  :func:`fetch` returns at once, without touching the network,
  when the destination file already exists and verifies; :func:`safe_extract_zip`
  leaves a marker and does nothing when the same archive was already unpacked.
- **Atomic.**  Bytes are streamed into a temporary file next to the destination
  and renamed into place (``os.replace``) only once size and checksum match, so
  an interrupted or corrupt download never leaves a file that looks complete.
  Archives are unpacked into a temporary folder and moved into place the same way.
- **Actionable errors.**  Network failures raise :class:`~tplib.errors.DownloadError`
  telling the exact file name, size and folder to place the file in by hand;
  wrong contents raise :class:`~tplib.errors.IntegrityError`; archive members
  that would escape the target folder raise :class:`~tplib.errors.UnsafeArchiveError`.

Only the standard library (``urllib``) and ``tqdm`` are used.
"""
from __future__ import annotations

import errno
import glob
import hashlib
import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm.auto import tqdm

from .catalog import Resource
from .errors import DiskFullError, DownloadError, IntegrityError, UnsafeArchiveError

__all__ = [
    "Resource",
    "sha256_file",
    "git_blob_sha1",
    "fetch",
    "safe_extract_zip",
]

CHUNK_SIZE = 1 << 20  # 1 MiB: large enough to be fast, small enough for a smooth bar
USER_AGENT = "tplib/0.1 (transfer-learning lab; Python-urllib)"
STALE_PART_AGE_S = 24 * 3600  # a partial download this old belongs to a dead run

# Everything that means "the network let us down" (as opposed to a local disk
# problem).  URLError/HTTPError, socket timeouts and connection resets are all
# OSError subclasses; IncompleteRead and RemoteDisconnected-style protocol
# failures are HTTPException subclasses.
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


# --------------------------------------------------------------------------- checksums
def _hash_stream(path: str | os.PathLike, digest) -> str:
    """Feed the file to ``digest`` in 1 MiB chunks (never the whole file in memory)."""
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, streamed."""
    return _hash_stream(path, hashlib.sha256())


def git_blob_sha1(path: str | os.PathLike) -> str:
    """Git blob id of a file: SHA-1 of ``b"blob <size>\\0"`` followed by the bytes.

    This is the id GitHub shows for a file, so a file hosted on GitHub can be
    checked without the repository publishing a separate checksum.
    """
    digest = hashlib.sha1()
    digest.update(b"blob %d\0" % os.path.getsize(path))
    return _hash_stream(path, digest)


def _mismatch(path: Path, resource: Resource) -> str | None:
    """Why ``path`` is not ``resource`` (expected vs found), or None if it is.

    The size is compared first because it costs nothing and already catches
    truncated downloads and HTML error pages; the hash is only computed after.
    """
    if not path.is_file():
        return "it is not a regular file"
    found_size = path.stat().st_size
    if resource.size is not None and found_size != resource.size:
        return f"expected {resource.size:,} bytes, found {found_size:,} bytes"
    if resource.check is None:
        return None
    kind, expected = resource.check
    expected = expected.lower()
    if kind == "git-blob-sha1":
        found = git_blob_sha1(path)
        ok = found == expected
        label = f"git blob id {expected}"
    elif kind == "sha256":
        found = sha256_file(path)
        ok = found == expected
        label = f"SHA-256 {expected}"
    else:  # "sha256-prefix" (kinds are validated in Resource.__post_init__)
        found = sha256_file(path)
        ok = found.startswith(expected)
        label = f"a SHA-256 starting with {expected}"
    if ok:
        return None
    return f"expected {label}, found {found} ({found_size:,} bytes)"


# --------------------------------------------------------------------------- download
def _offline_hint(resource: Resource, dest_dir: Path) -> str:
    """What to do by hand when the network is not available."""
    size = f"{resource.size:,} bytes" if resource.size is not None else "size unknown"
    return (
        f"To work without network, get the file {resource.filename} ({size}) some other way "
        f"(e.g. from {resource.url} on another machine) and place it in the folder {dest_dir} "
        f"(as {dest_dir / resource.filename}); it will be checked and used as is."
    )


def network_reason(exc: BaseException, timeout: float) -> str:
    """A short human reason for a network failure."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, TimeoutError):  # socket.timeout is an alias since Python 3.10
        return f"no answer within {timeout:g} s"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return f"no answer within {timeout:g} s"
        return str(reason) or type(reason).__name__
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed after {len(exc.partial):,} bytes, {exc.expected:,} more were announced"
    return str(exc) or type(exc).__name__


class _NetworkFailure(Exception):
    """Internal: wraps a network exception so local disk errors are not mistaken for it."""


class _ShortRead(Exception):
    """Internal: the connection closed before the announced length arrived."""

    def __init__(self, received: int, announced: int) -> None:
        super().__init__(f"connection closed after {received:,} of {announced:,} bytes")


def _remove_stale_parts(dest_dir: Path, filename: str) -> None:
    """Delete our own partial downloads left by runs that died more than a day ago."""
    cutoff = time.time() - STALE_PART_AGE_S
    for part in dest_dir.glob(glob.escape(filename) + ".part-*"):
        try:
            if part.is_file() and part.stat().st_mtime < cutoff:
                part.unlink()
        except OSError:
            pass  # another process may be cleaning up too; not worth failing for


def _stream(url: str, out, *, total: int | None, progress: bool, timeout: float, label: str) -> None:
    """Copy ``url`` into the open binary file ``out``; network errors become _NetworkFailure."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except _NETWORK_ERRORS as exc:
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # it holds the error page's socket
        raise _NetworkFailure(exc) from exc
    with response:
        announced = response.headers.get("Content-Length")
        announced = int(announced) if announced and announced.isdigit() else None
        if total is not None and announced is not None and announced != total:
            # The server is about to send something else (an HTML page, another
            # version): say so now rather than after a long download.
            raise IntegrityError(
                f"download of {url} was corrupt: the server announced {announced:,} bytes, "
                f"expected {total:,} bytes"
            )
        received = 0
        with tqdm(
            total=total if total is not None else announced,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            disable=not progress,
            leave=False,
        ) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK_SIZE)
                except _NETWORK_ERRORS as exc:
                    raise _NetworkFailure(exc) from exc
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if announced is not None and received < announced:
            # http.client returns b"" instead of raising when the connection is
            # cut early, so detect the short read here.
            raise _NetworkFailure(_ShortRead(received, announced))


def fetch(
    resource: Resource,
    dest_dir: str | os.PathLike,
    *,
    progress: bool = True,
    timeout: float = 15.0,
) -> Path:
    """Return ``dest_dir/resource.filename``, downloading and verifying it if needed.

    An existing file that verifies is returned without any network access; an
    existing file that does not verify is left alone (it may be the user's) and
    reported.  ``timeout`` bounds every network wait (connect and each read), so
    an unresponsive server fails after about ``timeout`` seconds.
    """
    dest_dir = Path(dest_dir).expanduser()
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / resource.filename

    if final.exists():
        problem = _mismatch(final, resource)
        if problem is None:
            return final
        raise IntegrityError(
            f"the file {resource.filename} at {final} is not the expected file ({problem}). "
            f"Delete it to have it downloaded again, or replace it with the right "
            f"{resource.describe()}."
        )

    _remove_stale_parts(dest_dir, resource.filename)
    # The pid keeps two processes downloading at once from writing the same file;
    # being in dest_dir keeps os.replace a same-filesystem (atomic) rename.
    part = dest_dir / f"{resource.filename}.part-{os.getpid()}"
    try:
        with open(part, "wb") as out:
            try:
                _stream(
                    resource.url,
                    out,
                    total=resource.size,
                    progress=progress,
                    timeout=timeout,
                    label=resource.filename,
                )
            except _NetworkFailure as failure:
                cause = failure.args[0]
                raise DownloadError(
                    f"could not download {resource.url} ({network_reason(cause, timeout)}). "
                    + _offline_hint(resource, dest_dir)
                ) from cause
            except IntegrityError as exc:  # the server announced the wrong size
                raise IntegrityError(f"{exc}. Try again later. "
                                     + _offline_hint(resource, dest_dir)) from None
            out.flush()
            os.fsync(out.fileno())  # the rename must not land before the bytes do
        # Verify the file on disk (not the stream): the very same check a file
        # placed by hand goes through.
        problem = _mismatch(part, resource)
        if problem is not None:
            raise IntegrityError(
                f"download of {resource.url} was corrupt: {problem}. Try again later. "
                + _offline_hint(resource, dest_dir)
            )
        os.replace(part, final)
    finally:
        # Runs on every failure, KeyboardInterrupt included; after a successful
        # os.replace the part file no longer exists and this is a no-op.
        try:
            part.unlink(missing_ok=True)
        except OSError:
            pass
    return final


# --------------------------------------------------------------------------- unpacking
_DRIVE = re.compile(r"^[A-Za-z]:")
_S_IFMT, _S_IFLNK = 0o170000, 0o120000


def _unsafe_reason(info: zipfile.ZipInfo, dest_dir: Path) -> str | None:
    """Why extracting this member could write outside ``dest_dir``, or None."""
    if (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
        return "it is a symbolic link"
    # Treat backslashes as separators too: an archive made on Windows may use them
    # and a later extraction there would honour them.
    name = info.filename.replace("\\", "/")
    if name.startswith("/"):
        return "it has an absolute path"
    if _DRIVE.match(name):
        return "it has a drive letter"
    if ".." in name.split("/"):
        return "it contains a '..' component"
    root = os.path.normpath(os.path.abspath(dest_dir))
    target = os.path.normpath(os.path.join(root, name))
    if target != root and not target.startswith(root.rstrip(os.sep) + os.sep):
        return "it would be written outside the target folder"
    return None


def _marker_path(zip_path: Path, dest_dir: Path) -> Path:
    return dest_dir / f".{zip_path.name}.unpacked"


def _marker_text(zip_path: Path) -> str:
    """Identifies this version of the archive: size and modification time (ns)."""
    st = zip_path.stat()
    return f"size={st.st_size}\nmtime_ns={st.st_mtime_ns}\n"


def _remove(path: Path) -> None:
    """Remove a file, link or folder tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _unpack_space_message(zip_path, dest_dir: Path, needed: int, free: int) -> str:
    return (f"no space to unpack {zip_path} into {dest_dir}: it needs {needed / 1e6:,.1f} MB, "
            f"{free / 1e6:,.1f} MB are free. Free some space, or set TPLIB_CACHE to a folder on "
            "another disk; nothing was kept")


def safe_extract_zip(zip_path: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Unpack ``zip_path`` into ``dest_dir`` once, refusing unsafe members; return ``dest_dir``.

    Every member is checked before anything is written.  Members are extracted
    into a temporary folder inside ``dest_dir`` and the top-level entries are then
    renamed into place, replacing older copies.  A marker file
    ``dest_dir/.<zipname>.unpacked`` records which archive (size, mtime) was
    unpacked, so calling again with the same archive does nothing.
    """
    zip_path = Path(zip_path).expanduser()
    dest_dir = Path(dest_dir).expanduser()
    marker = _marker_path(zip_path, dest_dir)
    current = _marker_text(zip_path)
    try:
        if marker.read_text() == current:
            return dest_dir
    except OSError:
        pass  # no marker (or unreadable): unpack

    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise IntegrityError(
            f"{zip_path} is not a valid zip archive ({exc}); it is probably corrupt or "
            f"incomplete. Delete it and download it again."
        ) from exc

    with archive:
        for info in archive.infolist():
            reason = _unsafe_reason(info, dest_dir)
            if reason is not None:
                raise UnsafeArchiveError(
                    f"refusing to unpack {zip_path}: member '{info.filename}' is unsafe ({reason}); "
                    f"nothing was extracted."
                )

        dest_dir.mkdir(parents=True, exist_ok=True)
        needed = sum(info.file_size for info in archive.infolist())
        free = shutil.disk_usage(dest_dir).free
        if needed > free:  # checked first: a zip bomb or a full disk fails before any write
            raise DiskFullError(_unpack_space_message(zip_path, dest_dir, needed, free))
        tmp = dest_dir / f".unpack-tmp-{os.getpid()}"
        try:
            if tmp.exists():
                _remove(tmp)  # left over by a killed run with a recycled pid
            tmp.mkdir()
            try:
                archive.extractall(tmp)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise IntegrityError(
                    f"{zip_path} is corrupt ({exc}). Delete it and download it again."
                ) from exc
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                    raise
                free = shutil.disk_usage(dest_dir).free
                raise DiskFullError(_unpack_space_message(zip_path, dest_dir, needed, free)) from None
            # Drop the old marker first: if we are interrupted while moving
            # entries, the next call must unpack again rather than trust them.
            marker.unlink(missing_ok=True)
            for entry in sorted(tmp.iterdir()):
                target = dest_dir / entry.name
                if target.exists() or target.is_symlink():
                    _remove(target)  # stale copy from an older or partial unpack
                os.replace(entry, target)
            marker_tmp = marker.with_name(f"{marker.name}.tmp-{os.getpid()}")
            try:
                marker_tmp.write_text(current)
                os.replace(marker_tmp, marker)
            finally:
                marker_tmp.unlink(missing_ok=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return dest_dir
