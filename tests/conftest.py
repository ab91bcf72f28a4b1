"""Shared fixtures: isolated caches, real data location, networks loaded once.

Real-data tests need the 15 Scene and cats-vs-dogs folders: ``TPLIB_REAL_DATA``
(a folder holding ``15SceneData/`` and ``catsdogs/``) or ``../shared/data`` beside
the checkout. Elsewhere they skip with a reason saying how to enable them; with
``TPLIB_REQUIRE_REAL_DATA=1`` (set by ``.ci/run``) a missing folder is a failure.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The answer corpus holds notebook cells, not test modules (some names end in _test.py).
collect_ignore_glob = ["answers/*"]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/oddimages.py

# `make test` runs two pytest workers (pytest-xdist) on the machine's cores: one torch
# thread each, inherited by the notebook kernels they start, so that they do not fight
# over the same cores (torch's threads spin while they wait).
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ["OMP_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)

# Browser tests: fixtures chromium, browser (headless Chromium) and screenshot_dir.
from browser_harness import browser, chromium, screenshot_dir  # noqa: E402,F401


def _real_data_root() -> Path | None:
    env = os.environ.get("TPLIB_REAL_DATA")
    candidates = [Path(env)] if env else [REPO.parent / "shared" / "data"]
    for c in candidates:
        if (c / "15SceneData" / "train").is_dir() and (c / "catsdogs" / "train").is_dir():
            return c
    return None


# Read once, before any test changes the environment.
REAL_DATA_ROOT = _real_data_root()


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path_factory, monkeypatch):
    """Every test gets its own empty tplib cache and TORCH_HOME: never the user's.

    Nor the user's run profile or shared data folder: a test that wants the real data
    asks for ``real_data_dir`` and passes it explicitly.
    """
    from tplib.profile import set_active_profile

    root = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("TPLIB_CACHE", str(root / "tplib"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setenv("TPLIB_REAL_DATA", str(root / "no-shared-data"))
    monkeypatch.delenv("TPLIB_PROFILE", raising=False)
    set_active_profile(None)
    yield root
    set_active_profile(None)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """Folder with ``15SceneData/`` and ``catsdogs/`` (skips, or fails in CI, without it)."""
    root = REAL_DATA_ROOT
    if root is None:
        msg = ("real data not found: set TPLIB_REAL_DATA to a folder holding 15SceneData/ "
               "and catsdogs/ (or place it at ../shared/data beside the checkout)")
        if os.environ.get("TPLIB_REQUIRE_REAL_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def lite0():
    """Real ImageNet-pretrained EfficientNet-Lite0 (from its registry package)."""
    from tplib.models import load_backbone

    return load_backbone("efficientnet_lite0")


@pytest.fixture(scope="session")
def vgg_random():
    """VGG16 with seeded random weights (architecture-only checks)."""
    from tplib.models import load_backbone

    return load_backbone("vgg16", weights="random")


@pytest.fixture
def image_folder(tmp_path):
    """A tiny dataset: 3 classes x (3 train, 2 test) RGB JPEGs of varied sizes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "tiny"
    for split, n in (("train", 3), ("test", 2)):
        for k, cls in enumerate(("alpha", "beta", "gamma")):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                h, w = rng.integers(40, 90, size=2)
                arr = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
                arr[..., k] = 255  # class colour, so features separate classes
                Image.fromarray(arr).save(d / f"img_{i}.jpg")
    return root


#: The tests that run notebook kernels one after another, in this order: the solution
#: notebooks under nbval, then the answer corpus, then the browser tests (by path from the
#: checkout; ``make test`` runs two pytest workers, and one runs this whole chain).
KERNEL_CHAIN = {
    "notebooks": 0,
    "tests/test_answer_corpus.py": 1,
    "tests/test_browser.py": 2,
    "tests/test_browser_notebooks.py": 2,
    "tests/test_widgets_compat.py": 2,
}


def _stage(path: str) -> int | None:
    """The place in the kernels' chain of the test file at ``path`` (relative to the
    checkout, as in a node id), or None for a file that runs on its own."""
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    if folder == "notebooks" and path.endswith(".ipynb"):
        return KERNEL_CHAIN["notebooks"]
    return KERNEL_CHAIN.get(path)


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config, items):
    """The kernels' chain first, in its order: by the time the answer corpus and the
    browser tests run, the nbval run has filled the feature cache they share
    (``TPLIB_NBVAL_CACHE``), so the notebook cells they run read features instead of
    extracting them; and it is the longest chain, so it starts at once."""
    def order(item) -> tuple[int, int]:
        stage = _stage(_file(item.nodeid))
        return (1, 0) if stage is None else (0, stage)

    items.sort(key=order)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` here: the kernels' chain is one group, run by one worker in
    collection order; every other test file is a group of its own (module fixtures are
    built once), handed to whichever worker is free."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class KernelChainScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = _file(nodeid)
            return "kernel chain" if _stage(path) is not None else path

    return KernelChainScheduling(config, log)
