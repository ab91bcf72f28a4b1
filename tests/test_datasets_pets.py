"""Oxford-IIIT Pet's cat-or-dog task in the data step (``tplib.setup(data="pets")``).

No network here: the raw files are placed in the cache as a user would, or served by a
local HTTP server standing in for the dataset's site (torchvision's downloader, MD5
checked, is what fetches them).
"""
from __future__ import annotations

import hashlib
import http.server
import io
import os
import tarfile
import threading
from functools import partial

import numpy as np
import pytest
from PIL import Image

from tplib.datasets import PETS_RAW, find_dataset
from tplib.errors import DataError, DownloadError
from tplib.paths import data_cache_dir
from tplib.profile import get_profile

# name, class id, species (1 cat, 2 dog), breed id -- the annotation files' format
TRAINVAL = [("Abyssinian_1", 1, 1, 1), ("Abyssinian_2", 1, 1, 1), ("beagle_1", 3, 2, 1),
            ("beagle_2", 3, 2, 1), ("beagle_3", 3, 2, 1)]
TEST = [("Bengal_7", 6, 1, 3), ("pug_4", 26, 2, 14), ("pug_missing", 26, 2, 14)]


def jpeg_bytes(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def raw_files() -> dict[str, bytes]:
    """Relative path -> content of the two unpacked archives (one listed photo missing)."""
    files = {f"images/{name}.jpg": jpeg_bytes(i) for i, (name, *_) in enumerate(TRAINVAL + TEST[:2])}
    for listing, rows in (("trainval", TRAINVAL), ("test", TEST)):
        files[f"annotations/{listing}.txt"] = "".join(f"{n} {c} {s} {b}\n" for n, c, s, b in rows).encode()
    return files


def pets(download: bool):
    return find_dataset("pets", profile=get_profile("full"), download=download, progress=False)


def test_pets_from_files_placed_in_the_cache():
    raw = data_cache_dir() / PETS_RAW
    for rel, content in raw_files().items():
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        (raw / rel).write_bytes(content)
    ds = pets(download=False)
    assert ds.source == "cache" and ds.name == "pets" and ds.classes == ["cat", "dog"]
    assert ds.train.counts() == {"cat": 2, "dog": 3}
    assert ds.test.counts() == {"cat": 1, "dog": 1}  # the missing photo is left out
    assert sorted(p.name for p in ds.test.paths) == ["Bengal_7.jpg", "pug_4.jpg"]
    linked = ds.train.paths[0]
    assert os.path.samefile(linked, raw / "images" / linked.name)  # a hard link, not a copy
    again = pets(download=False)  # the built folder is reused as it is
    assert again.root == ds.root and again.train.paths == ds.train.paths
    assert not (ds.root.parent / (ds.root.name + ".partial")).exists()


def test_pets_missing_without_download_says_what_to_place():
    with pytest.raises(DataError, match=PETS_RAW) as info:
        pets(download=False)
    assert "images.tar.gz" in str(info.value) and "robots.ox.ac.uk" in str(info.value)


@pytest.fixture
def pets_server(tmp_path):
    """The two archives served on 127.0.0.1, as the dataset's site serves them."""
    files = raw_files()
    site = tmp_path / "site"
    site.mkdir()
    md5 = {}
    for archive, prefix in (("images.tar.gz", "images/"), ("annotations.tar.gz", "annotations/")):
        with tarfile.open(site / archive, "w:gz") as tar:
            for rel, content in files.items():
                if rel.startswith(prefix):
                    entry = tarfile.TarInfo(rel)
                    entry.size = len(content)
                    tar.addfile(entry, io.BytesIO(content))
        md5[archive] = hashlib.md5((site / archive).read_bytes()).hexdigest()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield base, md5
    server.shutdown()
    server.server_close()


def test_pets_downloaded_through_torchvision(pets_server, monkeypatch):
    from torchvision.datasets import OxfordIIITPet

    base, md5 = pets_server
    monkeypatch.setattr(OxfordIIITPet, "_RESOURCES", tuple(
        (f"{base}/{name}", md5[name]) for name in ("images.tar.gz", "annotations.tar.gz")))
    ds = pets(download=True)
    assert ds.source == "download"
    assert ds.train.counts() == {"cat": 2, "dog": 3} and len(ds.test) == 2


def test_pets_download_with_a_wrong_checksum_fails_loudly(pets_server, monkeypatch):
    from torchvision.datasets import OxfordIIITPet

    base, md5 = pets_server
    monkeypatch.setattr(OxfordIIITPet, "_RESOURCES", (
        (f"{base}/images.tar.gz", "0" * 32), (f"{base}/annotations.tar.gz", md5["annotations.tar.gz"])))
    with pytest.raises(DownloadError, match="could not be downloaded"):
        pets(download=True)
    assert not (data_cache_dir() / "oxford-pets-catsdogs").exists()
