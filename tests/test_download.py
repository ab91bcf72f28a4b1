"""Tests for tplib.download against a local HTTP server on 127.0.0.1 (no network needed)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import socket
import subprocess
import threading
import time
import zipfile
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from tplib.catalog import KNOWN_DATASETS
from tplib.download import (
    Resource,
    fetch,
    git_blob_sha1,
    safe_extract_zip,
    sha256_file,
)
from tplib.errors import DownloadError, IntegrityError, UnsafeArchiveError

CLASSES = ("bedroom", "coast", "forest")


# --------------------------------------------------------------------------- helpers
class LocalServer:
    """A ThreadingHTTPServer serving ``root``; counts requests per path.

    ``special[path] = callable(handler)`` overrides what is served for one path.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.counts: Counter[str] = Counter()
        self.special: dict = {}
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(server.root), **kwargs)

            def do_GET(self):  # noqa: N802 (http.server naming)
                server.counts[self.path] += 1
                if self.path in server.special:
                    server.special[self.path](self)
                else:
                    super().do_GET()

            def log_message(self, *args):  # keep stderr clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    @property
    def total_requests(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    srv = LocalServer(root)
    try:
        yield srv
    finally:
        srv.close()


def jpeg_bytes(seed: int) -> bytes:
    """A tiny real JPEG, different for each seed."""
    img = Image.new("RGB", (8, 8), ((seed * 70) % 256, (seed * 30) % 256, 128))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def course_members() -> dict[str, bytes]:
    """Member name -> bytes, in the 15 Scene course layout."""
    members = {}
    for i, cls in enumerate(CLASSES):
        for j, split in enumerate(("train", "test")):
            members[f"15SceneData/{split}/{cls}/image_0001.jpg"] = jpeg_bytes(2 * i + j)
    return members


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def resource_for(url: str, filename: str, data: bytes, kind: str = "git-blob-sha1") -> Resource:
    """A Resource with the payload's real size and checksum (computed here with hashlib)."""
    if kind == "git-blob-sha1":
        value = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    elif kind == "sha256":
        value = hashlib.sha256(data).hexdigest()
    else:
        value = hashlib.sha256(data).hexdigest()[:8]
    return Resource("test", url, filename, len(data), (kind, value))


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- checksums
def test_checksums_match_hashlib_and_git(tmp_path):
    data = os.urandom(3 * (1 << 20) + 123)  # spans several 1 MiB chunks
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    assert sha256_file(f) == hashlib.sha256(data).hexdigest()
    assert git_blob_sha1(f) == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_blob_sha1_equals_git_hash_object(tmp_path):
    f = make_zip(tmp_path / "course.zip", course_members())
    out = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True, check=True)
    assert git_blob_sha1(f) == out.stdout.strip()


def test_a_placed_file_is_checked_and_the_mismatch_says_expected_and_found(tmp_path):
    data = b"hello world\n" * 100
    f = tmp_path / "x.bin"
    f.write_bytes(data)
    for kind in ("git-blob-sha1", "sha256", "sha256-prefix"):  # the URL is never asked
        assert fetch(resource_for("http://unused/", "x.bin", data, kind), tmp_path) == f
    wrong_hash = resource_for("http://unused/", "x.bin", data.upper())  # same size
    with pytest.raises(IntegrityError) as err:
        fetch(wrong_hash, tmp_path)
    msg = str(err.value)
    assert "x.bin" in msg and wrong_hash.check[1] in msg and git_blob_sha1(f) in msg
    wrong_size = dataclasses.replace(wrong_hash, size=5000)
    with pytest.raises(IntegrityError, match=r"expected 5,000 bytes, found 1,200 bytes"):
        fetch(wrong_size, tmp_path)
    assert f.read_bytes() == data  # the user's file is left alone


def test_resource_rejects_bad_definitions():
    with pytest.raises(ValueError):
        Resource("x", "http://h/x", "x", 1, ("md5", "00"))
    with pytest.raises(ValueError):
        Resource("x", "http://h/x", "../x", 1, None)


# --------------------------------------------------------------------------- 1. fetch
def test_fetch_downloads_then_is_idempotent(server, tmp_path):
    data = make_zip(tmp_path / "payload.zip", course_members()).read_bytes()
    (server.root / "15ScenesData.zip").write_bytes(data)
    res = resource_for(server.url("15ScenesData.zip"), "15ScenesData.zip", data)
    dest = tmp_path / "cache" / "data"  # does not exist yet

    path = fetch(res, dest, progress=True, timeout=5)
    assert path == dest / "15ScenesData.zip"
    assert path.read_bytes() == data
    assert git_blob_sha1(path) == res.check[1]
    assert listing(dest) == ["15ScenesData.zip"]  # no leftover .part file
    assert server.counts["/15ScenesData.zip"] == 1

    again = fetch(res, dest, progress=False, timeout=5)
    assert again == path
    assert server.total_requests == 1  # second call made no request at all


def test_fetch_with_sha256_prefix_check(server, tmp_path):
    data = os.urandom(2 * (1 << 20) + 7)
    (server.root / "w.pth").write_bytes(data)
    res = resource_for(server.url("w.pth"), "w.pth", data, "sha256-prefix")
    path = fetch(res, tmp_path / "ckpt", progress=False, timeout=5)
    assert path.read_bytes() == data


# --------------------------------------------------------------------------- 2. unzip
def test_safe_extract_zip_course_layout_and_idempotent(tmp_path):
    members = course_members()
    zip_path = make_zip(tmp_path / "15ScenesData.zip", members)
    dest = tmp_path / "data"

    assert safe_extract_zip(zip_path, dest) == dest
    for name, data in members.items():
        assert (dest / name).read_bytes() == data
    assert sorted(p.name for p in (dest / "15SceneData" / "train").iterdir()) == list(CLASSES)
    assert (dest / ".15ScenesData.zip.unpacked").is_file()
    assert not any(p.name.startswith(".unpack-tmp") for p in dest.iterdir())

    # Same archive again: nothing is unpacked (a deleted file stays deleted).
    victim = dest / "15SceneData/test/coast/image_0001.jpg"
    victim.unlink()
    safe_extract_zip(zip_path, dest)
    assert not victim.exists()

    # A different archive (new size / mtime) is unpacked again and replaces the old tree.
    members2 = {"15SceneData/train/bedroom/image_0002.jpg": jpeg_bytes(9)}
    make_zip(zip_path, members2)
    safe_extract_zip(zip_path, dest)
    assert (dest / "15SceneData/train/bedroom/image_0002.jpg").read_bytes() == members2[
        "15SceneData/train/bedroom/image_0002.jpg"
    ]
    assert not (dest / "15SceneData/train/bedroom/image_0001.jpg").exists()


# --------------------------------------------------------------------------- 3. checksum
def test_wrong_checksum_same_size(server, tmp_path):
    data = b"the right bytes " * 200
    res = resource_for(server.url("f.bin"), "f.bin", data)
    (server.root / "f.bin").write_bytes(data.upper())  # same size, other bytes
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError) as err:
        fetch(res, dest, progress=False, timeout=5)
    msg = str(err.value)
    assert "corrupt" in msg and res.url in msg and res.check[1] in msg
    assert listing(dest) == []  # neither the final file nor a .part file


# --------------------------------------------------------------------------- 4. truncated
def _cut_short(announce_full: bool, data: bytes):
    """Handler sending only half the bytes, announcing either all of them or none."""

    def handle(h):
        h.send_response(200)
        if announce_full:
            h.send_header("Content-Length", str(len(data)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data[: len(data) // 2])
        h.wfile.flush()
        h.close_connection = True

    return handle


@pytest.mark.parametrize("how", ["short-file", "lying-content-length", "no-content-length"])
def test_truncated_download(server, tmp_path, how):
    data = os.urandom(50_000)
    res = resource_for(server.url("t.bin"), "t.bin", data)
    if how == "short-file":
        (server.root / "t.bin").write_bytes(data[:30_000])
    else:
        server.special["/t.bin"] = _cut_short(how == "lying-content-length", data)
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError) as err:  # IntegrityError is a DownloadError
        fetch(res, dest, progress=False, timeout=5)
    msg = str(err.value)
    assert "50,000" in msg
    if how == "lying-content-length":
        assert "could not download" in msg and "25,000" in msg
    else:
        assert isinstance(err.value, IntegrityError)
    assert listing(dest) == []


# --------------------------------------------------------------------------- 5. no network
def test_no_network_message_says_what_to_place_where(tmp_path):
    res = dataclasses.replace(KNOWN_DATASETS["15scene"].resource, url=f"http://127.0.0.1:{closed_port()}/15ScenesData.zip")
    dest = tmp_path / "data"
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fetch(res, dest, progress=False, timeout=5)
    assert time.monotonic() - t0 < 5
    assert not isinstance(err.value, IntegrityError)
    msg = str(err.value)
    assert "could not download" in msg and res.url in msg
    assert "15ScenesData.zip" in msg
    assert "86,520,868" in msg
    assert str(dest) in msg
    assert listing(dest) == []


# --------------------------------------------------------------------------- 6. silent server
def test_server_that_never_answers_times_out(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)  # the kernel completes the handshake; we never accept nor reply
        port = lsock.getsockname()[1]
        res = Resource("slow", f"http://127.0.0.1:{port}/x.bin", "x.bin", 1234, None)
        dest = tmp_path / "dest"
        t0 = time.monotonic()
        with pytest.raises(DownloadError) as err:
            fetch(res, dest, progress=False, timeout=0.5)
        elapsed = time.monotonic() - t0
    assert elapsed < 5
    assert "0.5 s" in str(err.value) and "1,234" in str(err.value)
    assert listing(dest) == []


# --------------------------------------------------------------------------- 7. 404
def test_http_404(server, tmp_path):
    res = Resource("missing", server.url("nope.zip"), "nope.zip", 10, None)
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match="404") as err:
        fetch(res, dest, progress=False, timeout=5)
    assert not isinstance(err.value, IntegrityError)
    assert server.counts["/nope.zip"] == 1
    assert listing(dest) == []


# --------------------------------------------------------------------------- 8. zip slip
def _evil_zip(path: Path, bad: zipfile.ZipInfo, payload: bytes = b"pwned") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("good/first.txt", b"written before the bad member")  # must not be extracted either
        zf.writestr(bad, payload)
    with zipfile.ZipFile(path) as zf:  # zipfile kept the hostile name as written
        assert zf.infolist()[1].filename == bad.filename
    return path


@pytest.mark.parametrize("kind", ["dotdot", "backslash-dotdot", "absolute", "drive", "symlink"])
def test_zip_slip_is_refused(tmp_path, kind):
    outside = tmp_path / "outside"
    outside.mkdir()
    if kind == "dotdot":
        info = zipfile.ZipInfo("../evil.txt")
    elif kind == "backslash-dotdot":
        info = zipfile.ZipInfo("good\\..\\..\\evil.txt")
    elif kind == "absolute":
        info = zipfile.ZipInfo(str(outside / "evil.txt"))
    elif kind == "drive":
        info = zipfile.ZipInfo("C:/evil.txt")
    else:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)  # S_IFLNK | 0777
    payload = str(outside / "evil.txt").encode() if kind == "symlink" else b"pwned"
    zip_path = _evil_zip(tmp_path / "evil.zip", info, payload)
    dest = tmp_path / "dest"
    before = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract_zip(zip_path, dest)
    msg = str(err.value)
    assert info.filename in msg and str(zip_path) in msg
    assert listing(dest) == []  # nothing inside dest
    assert listing(outside) == []  # nothing outside either
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "evil.txt").exists()


# --------------------------------------------------------------------------- 9. corrupt zip
def test_corrupt_zip(tmp_path):
    bad = tmp_path / "15ScenesData.zip"
    bad.write_bytes(os.urandom(4096))
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError) as err:
        safe_extract_zip(bad, dest)
    assert str(bad) in str(err.value) and "download it again" in str(err.value)
    assert listing(dest) == []


def test_zip_with_bad_crc_leaves_nothing(tmp_path):
    data = b"A" * 5000
    zip_path = tmp_path / "crc.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("top/a.txt", data)
    raw = bytearray(zip_path.read_bytes())
    raw[raw.index(data) + 10] ^= 0xFF  # flip one stored byte: the CRC no longer matches
    zip_path.write_bytes(bytes(raw))
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError, match="crc.zip"):
        safe_extract_zip(zip_path, dest)
    assert listing(dest) == []  # temporary folder removed, no marker


# --------------------------------------------------------------------------- 10. placed by hand
def test_wrong_file_placed_by_hand_is_kept_and_reported(server, tmp_path):
    data = b"real payload" * 100
    (server.root / "f.bin").write_bytes(data)
    res = resource_for(server.url("f.bin"), "f.bin", data)
    dest = tmp_path / "dest"
    dest.mkdir()
    placed = dest / "f.bin"
    placed.write_bytes(b"something else entirely")

    with pytest.raises(IntegrityError) as err:
        fetch(res, dest, progress=False, timeout=5)
    msg = str(err.value)
    assert str(placed) in msg and "1,200 bytes" in msg and "Delete it" in msg
    assert placed.read_bytes() == b"something else entirely"  # not deleted
    assert server.total_requests == 0


def test_stale_part_files_are_cleaned(server, tmp_path):
    data = b"x" * 3000
    (server.root / "f.bin").write_bytes(data)
    res = resource_for(server.url("f.bin"), "f.bin", data)
    dest = tmp_path / "dest"
    dest.mkdir()
    stale = dest / "f.bin.part-999999"
    fresh = dest / "f.bin.part-999998"
    stale.write_bytes(b"old")
    fresh.write_bytes(b"maybe another live download")
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    fetch(res, dest, progress=False, timeout=5)
    assert not stale.exists() and fresh.exists()


# --------------------------------------------------------------------------- 11. registry
def test_weights_resources_agree_with_torchvision():
    """Each torchvision network's weights resource against torchvision's own weights metadata."""
    from torchvision.models import get_weight

    from tplib.models import weights_resource
    from tplib.registry import NETWORKS

    for spec in NETWORKS.values():
        if spec.family != "torchvision":
            continue
        res, meta = weights_resource(spec), get_weight(spec.weights)
        assert res.url == meta.url and res.filename == meta.url.rsplit("/", 1)[1]
        kind, prefix = res.check
        assert kind == "sha256-prefix" and res.filename.endswith(f"-{prefix}.pth")
        if res.size is not None:  # torchvision states the size in MiB, 3 decimals
            assert round(res.size / 2**20, 3) == pytest.approx(meta.meta["_file_size"])
    vgg16 = weights_resource(NETWORKS["vgg16"])
    assert (vgg16.filename, vgg16.size, vgg16.check) == ("vgg16-397923af.pth", 553_433_881,
                                                         ("sha256-prefix", "397923af"))


def test_git_blob_id_equals_git_hash_object(tmp_path):
    """The 15 Scene zip is checked by its git blob id: compare with git itself."""
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    f = tmp_path / "blob.bin"
    f.write_bytes(os.urandom(3000) + b"\0" * 100)
    expected = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert git_blob_sha1(f) == expected
    assert KNOWN_DATASETS["15scene"].resource.check[0] == "git-blob-sha1"


def test_describe_gives_what_a_person_needs_to_fetch_by_hand():
    r = KNOWN_DATASETS["15scene"].resource
    text = r.describe("/some/dir")
    assert r.url in text and r.filename in text and f"{r.size:,} bytes" in text
    assert text.endswith(", to be placed in /some/dir")


def test_unpacking_needs_the_space_first_and_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import errno
    import shutil
    from collections import namedtuple

    from tplib.errors import DiskFullError

    zip_path = tmp_path / "big.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("top/zeros.bin", b"\0" * 3_000_000)  # 3 MB that compress to a few KB
    dest = tmp_path / "dest"
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1_000_000, 1_000_000))
    with pytest.raises(DiskFullError, match=r"it needs 3\.0 MB, 1\.0 MB are free"):
        safe_extract_zip(zip_path, dest)
    assert listing(dest) == []
    # enough space announced, but the disk fills while writing
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 0, 10**9))

    def full(self, path=None, members=None, pwd=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "extractall", full)
    with pytest.raises(DiskFullError, match="no space to unpack .*TPLIB_CACHE"):
        safe_extract_zip(zip_path, dest)
    assert listing(dest) == []
