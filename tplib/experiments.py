"""The "going further" experiments of the lab (notebook 05): other networks, one table.

:func:`compare_networks` runs every network of the registry whose pretrained weights
are here through the same pipeline (default feature layer, L2 rows, ``LinearSVC``)
on the same images, and lists the others with the file or package to place instead
of skipping them. :func:`network_table` formats the rows for a notebook.

The other experiments of notebook 05 are one call each on the rest of the library:
layers (:func:`tplib.extract_features` with many layers and ``pool="avg"``,
:func:`tplib.registry.sweep_layers`), C (:func:`tplib.search_C`), PCA
(:func:`tplib.pca_svm` + :func:`tplib.fit_and_score`) and a new linear layer
(:func:`tplib.finetune.train_head`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from .defaults import DEFAULT_C
from .errors import MissingWeightsError
from .registry import NETWORK_NAMES, get_spec


@dataclass
class NetworkRow:
    """One network of :func:`compare_networks`.

    Attributes:
        name, title: registry name and human name.
        available: True when its pretrained weights were here and it ran.
        layer: the feature layer used (the network's default), dim: its size per image.
        params: parameters of the whole network.
        seconds: feature extraction time for train + test (a cache hit: the read time).
        from_cache: both feature matrices came from the feature cache.
        accuracy, n_correct, n_test: L2 rows + ``LinearSVC(C)`` on the test images.
        missing: for an unavailable network, what to place where (the error's message).
        weights_file: the file (or package) that is missing.
    """

    name: str
    title: str
    available: bool
    layer: str = ""
    dim: int = 0
    params: int = 0
    seconds: float = float("nan")
    from_cache: bool = False
    accuracy: float = float("nan")
    n_correct: int = 0
    n_test: int = 0
    missing: str = ""
    weights_file: str = ""


def _missing_file(name: str) -> str:
    """The file name (torchvision) or package (registry package) that ``name`` needs."""
    spec = get_spec(name)
    if spec.family == "torchvision":
        from .models import weights_resource

        return weights_resource(spec).filename
    return f"package {spec.weights}"


def compare_networks(dataset, names: Iterable[str] = NETWORK_NAMES, *, C: float = DEFAULT_C,
                     progress: bool | None = None) -> list[NetworkRow]:
    """Every network of ``names`` on ``dataset``: feature size, parameters, time, accuracy.

    Args:
        dataset: a :class:`tplib.data.Dataset` (its ``train`` and ``test`` splits; a
            subset keeps this quick: every network runs over every image given).
        names: registry names (default: all of :data:`tplib.registry.NETWORK_NAMES`).
        C: the SVM's C.
        progress: progress bars (default: the run profile's).

    Returns:
        One :class:`NetworkRow` per name, in the order given. A network whose weights
        are not here is never downloaded: its row has ``available=False`` and
        ``missing`` says what to place where (:func:`tplib.models.weights_help`).
        Weights that are here but broken raise :class:`tplib.errors.WeightsError`.
    """
    from .features import extract_features
    from .models import load_backbone, weights_available, weights_help
    from .predict import count_parameters
    from .svm import check_C, svm_fit_score

    C = check_C(C)  # before the first network's extraction, not after it
    names = [names] if isinstance(names, str) else list(names)  # one name, not its letters
    rows = []
    for name in names:
        spec = get_spec(name)
        if not weights_available(name):
            rows.append(NetworkRow(name, spec.title, False, layer=spec.default_layer,
                                   missing=weights_help(spec), weights_file=_missing_file(name)))
            continue
        try:
            backbone = load_backbone(name, download=False, progress=False)
        except MissingWeightsError as exc:  # e.g. timm missing although the file is there
            rows.append(NetworkRow(name, spec.title, False, layer=spec.default_layer,
                                   missing=str(exc), weights_file=_missing_file(name)))
            continue
        layer = backbone.default_layer
        t0 = time.perf_counter()
        train = extract_features(backbone, dataset.train, layer, progress=progress,
                                 desc=f"{name} train")
        test = extract_features(backbone, dataset.test, layer, progress=progress, desc=f"{name} test")
        seconds = time.perf_counter() - t0
        result = svm_fit_score(train[layer], train.labels, test[layer], test.labels, C=C,
                               n_classes=len(dataset.classes))
        rows.append(NetworkRow(name, spec.title, True, layer=layer, dim=int(train[layer].shape[1]),
                               params=count_parameters(backbone.model), seconds=seconds,
                               from_cache=train.from_cache and test.from_cache,
                               accuracy=result.accuracy, n_correct=result.n_correct,
                               n_test=result.n_test))
        del backbone, train, test
    return rows


def network_table(rows: Sequence[NetworkRow], *, times: bool = False) -> str:
    """The rows as a fixed-width text table (accuracy with 3 decimals).

    ``times=True`` adds the extraction time column (not reproducible across machines:
    print it in a cell whose output is not compared). Unavailable networks show the
    missing file instead of numbers.
    """
    head = ["network", "layer", "feature size", "parameters", "test accuracy"]
    if times:
        head.append("time (s)")
    body = []
    for r in rows:
        if r.available:
            line = [r.title, r.layer, f"{r.dim:,}", f"{r.params / 1e6:.1f} M",
                    f"{r.accuracy:.3f} ({r.n_correct}/{r.n_test})"]
            if times:
                line.append(f"{r.seconds:.1f}" + (" (cache)" if r.from_cache else ""))
        else:
            line = [r.title, r.layer, "-", "-", f"weights not here: {r.weights_file}"]
            if times:
                line.append("-")
        body.append(line)
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*line) for line in body]
    return "\n".join(line.rstrip() for line in lines)


__all__ = ["NetworkRow", "compare_networks", "network_table"]
