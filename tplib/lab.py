"""The lab's main result, headless: 15 Scene -> features -> LinearSVC -> report.

:func:`run_lab` is what ``tplib run`` calls; notebooks can call it too. It uses the same
run profile, data step and fallback policy as :func:`tplib.setup`, checks every option
before any image is decoded, and never pretends: whenever it has to use something
other than the lab's setting (another network because VGG16's weights are missing,
random weights, generated data), the result's ``banner`` says so, and
:class:`LabResult` records what was really used.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import DEFAULT_DATASET
from .defaults import DEFAULT_C
from .engine import Engine
from .errors import DataError, MissingWeightsError, OptionError, TplibError
from .profile import get_profile, profile_defaults
from .registry import DEFAULT_NETWORK, DEFAULT_WEIGHTS, check_weights, get_spec
from .svm import RANDOM_STATE, check_C, svm_fit_score

logger = logging.getLogger("tplib")


@dataclass
class LabOptions:
    """Settings of one run (the command line's options).

    Attributes:
        data: a folder (or the course zip) with train/ and test/ class folders; None:
            15 Scene found by the profile's data step (:func:`tplib.find_dataset`).
        out: report folder; None: ``./reports/run-YYYYmmdd-HHMMSS``.
        model, weights, layer, pool, C: what is computed (layer None: the network's default).
        profile: "full", "quick" or "ci"; None: ``$TPLIB_PROFILE``, else "full".
        split: N train images per class for a folder without train/ and test/.
        strict: stop (listing everything missing) instead of substituting.
        download: try downloads; None: the profile's choice.
        cache: read/write the feature cache.
        progress: progress bars; None: the profile's choice.
        engine: batch size, device, precision, threads...; None: the profile's.
    """

    data: str | None = None
    out: str | None = None
    model: str = DEFAULT_NETWORK
    weights: str = DEFAULT_WEIGHTS
    layer: str | None = None
    pool: str = "none"
    C: float = DEFAULT_C
    profile: str | None = None
    split: int | None = None
    strict: bool = False
    download: bool | None = None
    cache: bool = True
    progress: bool | None = None
    engine: Engine | None = None


@dataclass
class LabResult:
    """What one run measured and used (``metrics.json`` is :meth:`to_dict`).

    Attributes:
        title: one line: data, network, layer, classifier and warning tags.
        banner: loud lines (substitute network, random weights, generated data).
        model, weights: the network really used and its weights ("random" or
            "imagenet (<source>)").
        data: "real" or "generated".
        accuracy, n_correct, n_test: test accuracy and its counts.
        classes: K class names; per_class_accuracy: K floats (None: no test image);
        per_class_support: K test counts; confusion_matrix: K x K counts (row = true).
        settings: everything that defines the numbers (layer, pool, C, preprocessing...).
        timings: seconds per step, and "images_per_second" when features were computed.
        skipped: [{"path", "reason"}] undecodable images; ignored: [{"path", "reason"}]
            files not taken as images (stray files, links leaving their class folder...);
            warnings: other remarks.
        cache: feature cache entries used and whether both were hits.
        report: paths of the written files ("metrics", "summary", ...).
    """

    title: str
    banner: list[str]
    model: str
    weights: str
    data: str
    accuracy: float
    n_correct: int
    n_test: int
    classes: list[str]
    per_class_accuracy: list[float | None]
    per_class_support: list[int]
    confusion_matrix: list[list[int]]
    settings: dict
    timings: dict
    skipped: list[dict] = field(default_factory=list)
    ignored: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cache: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (the content of ``metrics.json``)."""
        return dataclasses.asdict(self)


# ------------------------------------------------------------------ checks
def check_options(opts: LabOptions):
    """Check every option before any work; returns (profile, engine, C).

    Raises :class:`~tplib.errors.OptionError` (or another :class:`TplibError`) with a
    one-line message for a value that cannot work.
    """
    profile = get_profile(opts.profile)
    engine, = profile_defaults(profile, engine=opts.engine)
    C = check_C(opts.C)
    spec = get_spec(opts.model)
    check_weights(opts.weights)
    if opts.layer is not None:
        if not opts.layer.strip():
            raise OptionError(f"--layer is empty; leave it out for {spec.name}'s default "
                              f"({spec.default_layer}) or pick one of: {', '.join(spec.layers)}")
        if opts.layer not in spec.layers:
            from .models import build_model

            if opts.layer not in dict(build_model(spec.name).named_modules()):
                from .errors import LayerError

                raise LayerError(f"unknown layer {opts.layer!r} for {spec.name}. Valid names: "
                                 f"{', '.join(spec.layers)} (or a module name such as "
                                 f"{spec.layers[spec.default_layer]!r})")
    if opts.split is not None and opts.split < 1:
        raise OptionError(f"--split must be at least 1 image per class, not {opts.split}")
    if opts.out is not None:
        from .report import check_out_dir

        check_out_dir(opts.out)
    engine.check_device()
    if opts.strict and opts.cache:  # --strict never carries on without the cache
        from .cache import check_writable

        check_writable()
    return profile, engine, C


def _check_classes(train_labels, classes, skipped) -> None:
    import numpy as np

    counts = np.bincount(train_labels, minlength=len(classes))
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        raise DataError(f"no usable training image left in class(es) {', '.join(empty)} "
                        f"after skipping {len(skipped)} undecodable file(s); fix or replace them.")


def _get_inputs(opts: LabOptions, profile, download: bool, progress: bool):
    """(dataset, backbone); with ``strict``, everything missing is reported in one error."""
    from .datasets import find_dataset
    from .models import resolve_backbone

    problems, dataset, backbone = [], None, None
    try:
        dataset = find_dataset(opts.data if opts.data is not None else DEFAULT_DATASET, profile=profile,
                               download=download, strict=opts.strict, progress=progress,
                               split=opts.split)
    except TplibError as exc:
        if not opts.strict or isinstance(exc, DataError) and opts.data is not None:
            raise
        problems.append(str(exc))
    try:
        backbone = resolve_backbone(opts.model, weights=opts.weights, download=download,
                                    strict=opts.strict, progress=progress)
    except MissingWeightsError as exc:
        if not opts.strict:
            raise
        problems.append(str(exc))
    if problems:
        raise TplibError("--strict: missing " + str(len(problems)) + " item(s):\n- "
                         + "\n- ".join(problems))
    return dataset, backbone


# ------------------------------------------------------------------ the run
def run_lab(opts: LabOptions) -> LabResult:
    """Run the whole lab once; returns the :class:`LabResult` (also written to disk)."""
    from .features import extract_features
    from .report import write_report

    profile, engine, C = check_options(opts)
    download, progress = profile_defaults(profile, download=opts.download, progress=opts.progress)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    dataset, backbone = _get_inputs(opts, profile, download, progress)
    timings["load_inputs"] = time.perf_counter() - t0
    banner = list(backbone.notes) + list(dataset.notes)
    layer = opts.layer or backbone.default_layer
    if opts.layer and backbone.substituted:
        banner.append(f"layer {opts.layer} is a {backbone.requested} layer; {backbone.name} uses "
                      f"its {backbone.default_layer} features instead")
        layer = backbone.default_layer
    backbone.node(layer)

    if banner:
        from .report import console_banner

        logger.warning("\n".join(console_banner(banner)))
    logger.info("data: %s%s\nnetwork: %s\nlayer: %s, pool: %s, C=%g", dataset.describe(),
                f"\nsubset: {dataset.subset_rule}" if dataset.subset_rule else "",
                backbone.describe(), layer, opts.pool, C)

    feats = {}
    for split in (dataset.train, dataset.test):
        f = extract_features(backbone, split, layer, pool=opts.pool, cache=opts.cache,
                             progress=progress, desc=f"{split.name} {layer}", engine=engine)
        feats[split.name] = f
        timings[f"extract_{split.name}"] = f.seconds
        if f.from_cache:
            logger.info("%s: features read from the cache %s (clear it with `tplib cache clear`)",
                        split.name, f.cache_path)
        else:
            logger.info("%s: %s images in %.1f s (%.1f img/s)", split.name, f"{f.n_computed:,}",
                        f.seconds, f.images_per_second)
    train, test = feats["train"], feats["test"]
    skipped = train.skipped + test.skipped
    _check_classes(train.labels, dataset.classes, skipped)
    if len(test.labels) == 0:
        raise DataError("no usable test image left after skipping undecodable files")

    res = svm_fit_score(train[layer], train.labels, test[layer], test.labels, C=C,
                        n_classes=len(dataset.classes))
    timings["fit"], timings["predict"] = res.fit_seconds, res.predict_seconds
    timings["total"] = time.perf_counter() - t_start
    computed = [f for f in (train, test) if not f.from_cache and f.n_computed]
    if computed:
        timings["images_per_second"] = (sum(f.n_computed for f in computed)
                                        / sum(f.seconds for f in computed))

    weights = ("random" if not backbone.pretrained else
               f"imagenet ({backbone.source.split(',')[0]})")
    tags = ((" [RANDOM WEIGHTS]" if not backbone.pretrained else "")
            + (" [GENERATED DATA]" if not dataset.is_real else "")
            + (f" [{profile.name} profile]" if profile.name != "full" else ""))
    result = LabResult(
        title=f"{dataset.title}: {backbone.name} {layer} + LinearSVC(C={C:g}){tags}",
        banner=banner, model=backbone.name, weights=weights,
        data="real" if dataset.is_real else "generated",
        accuracy=float(res.accuracy), n_correct=res.n_correct, n_test=res.n_test,
        classes=list(dataset.classes),
        per_class_accuracy=[None if v != v else float(v) for v in res.per_class_accuracy],
        per_class_support=[int(s) for s in res.support],
        confusion_matrix=res.confusion.astype(int).tolist(),
        settings={
            "model": backbone.name, "requested_model": backbone.requested, "weights": weights,
            "weights_source": backbone.source, "data": dataset.title,
            "data_source": dataset.source, "data_origin": dataset.origin,
            "split": dataset.split_rule or "train/ and test/ folders",
            "subset": dataset.subset_rule or "all images", "profile": profile.name,
            "layer": layer, "node": backbone.node(layer), "pool": opts.pool,
            "feature_dim": int(train[layer].shape[1]), "C": C,
            "classifier": f"L2-normalised rows + LinearSVC(random_state={RANDOM_STATE})",
            "preprocess": backbone.preprocess.describe(), "n_train": int(len(train.labels)),
            "n_test": int(len(test.labels)), **train.settings,
        },
        timings=timings,
        skipped=[{"path": p, "reason": r} for p, r in skipped],
        ignored=[{"path": p, "reason": r} for p, r in dataset.train.ignored + dataset.test.ignored],
        warnings=dataset.warnings + res.warnings + [
            f"feature cache {f.settings['cache']}" for f in (train, test) if "cache" in f.settings][:1],
        cache={"train": str(train.cache_path) if train.cache_path else None,
               "test": str(test.cache_path) if test.cache_path else None,
               "hit": bool(train.from_cache and test.from_cache)},
    )
    out = (Path(os.path.abspath(Path(opts.out).expanduser())) if opts.out
           else Path.cwd() / "reports" / time.strftime("run-%Y%m%d-%H%M%S"))
    if (out / "metrics.json").exists():
        logger.info("replacing the earlier report in %s", out)
    result.report = {k: str(v) for k, v in write_report(out, result.to_dict()).items()}
    return result
