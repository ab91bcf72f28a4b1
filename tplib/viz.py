"""Plotting helpers for the lab: every function returns a ``matplotlib.figure.Figure``.

Figures are built with the object-oriented API (``Figure`` + ``add_subplot``) and never
through ``pyplot``, so importing or calling this module does not pick or change the global
backend: it works headless (scripts, CI) and inside notebooks, where a returned ``Figure``
is displayed inline. Inputs may be numpy arrays or torch tensors (on any device, any
dtype); torch itself is never imported here.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # only for annotations: keeps import cheap and side-effect free
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_confusion_matrix",
    "plot_per_class_accuracy",
    "show_images",
    "plot_activation_maps",
    "plot_layer_curve",
    "plot_training_curves",
    "plot_data_efficiency",
    "imagenet_denormalize",
    "plot_class_counts",
    "show_confused",
    "plot_c_curve",
    "plot_pca_curve",
    "show_misclassified",
    "plot_layer_parameters",
    "plot_topk",
    "plot_filters",
    "plot_activation_channel",
]

# Above this many classes the cell values become unreadable, so they are left out.
_MAX_ANNOTATED_CLASSES = 20


# --------------------------------------------------------------------------- helpers


def _to_numpy(x: Any) -> np.ndarray:
    """Any array-like or torch tensor -> numpy array (tensors are detached, moved to CPU).

    Duck-typed on ``.detach`` so torch is not imported; half / bfloat16 tensors are cast
    to float32 first because numpy has no bfloat16.
    """
    if hasattr(x, "detach"):
        t = x.detach().cpu()
        if t.is_floating_point() and t.element_size() < 4:
            t = t.float()
        return t.numpy()
    return np.asarray(x)


def _new_figure(figsize: tuple[float, float], layout: str | None = None) -> Figure:
    """A standalone Figure, not registered with pyplot (so nothing leaks or pops up)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout=layout)


def _root_figure(ax: Axes) -> Figure:
    """The top-level Figure holding ``ax`` (walks up through SubFigures)."""
    fig = ax.figure
    while getattr(fig, "figure", fig) is not fig:
        fig = fig.figure
    return fig


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes, bool]:
    """Use the caller's axes, or make a new figure with one axes.

    Returns (figure, axes, owned); ``owned`` tells whether we may change the figure's
    layout, which we must not do to a figure the caller built.
    """
    if ax is not None:
        return _root_figure(ax), ax, False
    fig = _new_figure(figsize)
    return fig, fig.add_subplot(), True


def _image_to_array(img: Any) -> np.ndarray:
    """PIL image / array / tensor -> (H, W) or (H, W, 3|4) array ready for ``imshow``.

    uint8 stays uint8 (0..255); anything else becomes float32 clipped to [0, 1]. A
    channel-first (3, H, W) or (1, H, W) array is transposed, as a tensor would be.
    """
    if hasattr(img, "convert") and hasattr(img, "mode"):  # PIL image
        if img.mode not in ("L", "RGB", "RGBA"):
            img = img.convert("RGB")
        return np.asarray(img)
    arr = _to_numpy(img)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.transpose(arr, (1, 2, 0))
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


def _grid(n: int, ncols: int) -> tuple[int, int]:
    """(rows, cols) of a grid holding n cells with at most ncols columns."""
    cols = max(1, min(ncols, n))
    return math.ceil(n / cols), cols


# ---------------------------------------------------------------- confusion matrix


def _row_normalize(cm: np.ndarray) -> np.ndarray:
    """(K, K) counts -> (K, K) float64 fractions per row; a row with no samples stays 0."""
    sums = cm.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(cm, sums, out=np.zeros(cm.shape, dtype=np.float64), where=sums > 0)


def cell_text(value: float, normalize: bool) -> str:
    """The text written in a confusion-matrix cell.

    Exact zeros are "0"; a non-zero fraction that would round to 0.00 is "<.01", so a
    rare confusion never looks like none; other fractions have 2 decimals, counts none.
    """
    if value == 0:
        return "0"
    if not normalize:
        return f"{int(value)}"
    return "<.01" if value < 0.005 else f"{value:.2f}"


def _annotate_cells(ax: Axes, values: np.ndarray, normalize: bool, vmax: float) -> None:
    """Write each cell's value; exact zeros are a faint "0" so the non-zero cells stand out."""
    k = values.shape[0]
    fontsize = min(9.0, 120.0 / k)
    for i in range(k):
        for j in range(k):
            v = values[i, j]
            # Dark text on light cells, white on dark ones, to stay legible.
            color = "0.7" if v == 0 else ("white" if v > 0.5 * vmax else "black")
            ax.text(j, i, cell_text(v, normalize), ha="center", va="center", fontsize=fontsize,
                    color=color)


def plot_confusion_matrix(
    cm: Any,
    classes: Sequence[str],
    *,
    normalize: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Heat map of a confusion matrix.

    Args:
        cm: (K, K) integer counts (array or tensor); row = true class, column = predicted.
        classes: K class names, in the order of the rows / columns.
        normalize: show each row as fractions of that class's test images (colour scale
            0..1, values with 2 decimals) instead of raw counts.
        ax: draw into these axes instead of a new figure.
        title: defaults to "Confusion matrix (row-normalised)" or "(counts)".

    Returns:
        The Figure: the matrix axes plus a colour-bar axes. Cell values are written when
        K <= 20.
    """
    counts = _to_numpy(cm)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"confusion matrix must be square (K, K), got shape {counts.shape}")
    k = counts.shape[0]
    if len(classes) != k:
        raise ValueError(f"{len(classes)} class names for a {k}x{k} confusion matrix")

    values = _row_normalize(counts) if normalize else counts.astype(np.float64)
    vmax = 1.0 if normalize else max(float(values.max(initial=0.0)), 1.0)
    # ~ (9, 8) inches for the 15 Scene classes, growing with K so labels keep their room.
    fig, ax, owned = _figure_and_axes(ax, (max(6.0, 0.45 * k + 2.5), max(5.0, 0.45 * k + 1.5)))

    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cbar.set_label("fraction of the true class's test images (each row sums to 1)" if normalize
                   else "number of test images")

    tick_size = 9.0 if k <= _MAX_ANNOTATED_CLASSES else max(4.0, 180.0 / k)
    ticks = np.arange(k)
    ax.set_xticks(ticks)
    ax.set_xticklabels(classes, rotation=60, ha="right", rotation_mode="anchor", fontsize=tick_size)
    ax.set_yticks(ticks)
    ax.set_yticklabels(classes, fontsize=tick_size)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    default = "Confusion matrix (row-normalised)" if normalize else "Confusion matrix (counts)"
    ax.set_title(title if title is not None else default)

    if k <= _MAX_ANNOTATED_CLASSES:
        _annotate_cells(ax, values, normalize, vmax)
        if normalize and owned:
            fig.text(0.01, 0.01, '"0": no image; "<.01": under 1% of the class', fontsize=7,
                     color="0.4")
    if owned:
        fig.tight_layout()
    return fig


# ------------------------------------------------------------- per-class accuracy


def plot_per_class_accuracy(
    classes: Sequence[str],
    accuracies: Any,
    *,
    overall: float | None = None,
    support: Any | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Horizontal bars of per-class accuracy, worst class at the bottom.

    Args:
        classes: K class names.
        accuracies: K floats in [0, 1] (array, tensor or list); NaN / None (a class with
            no test image) is drawn as an empty bar labelled "n/a".
        overall: if given, a dashed vertical line at the overall accuracy.
        support: K test-image counts; shown as "coast (n=5)" and "3/5" beside the bar
            (with 5 test images, 0.60 is three correct).
        ax: draw into these axes instead of a new figure.
        title: defaults to "Per-class accuracy".

    Returns:
        The Figure; its axes hold exactly K bar patches.
    """
    acc = np.array([np.nan if a is None else a for a in _to_numpy(accuracies).tolist()], dtype=np.float64)
    if acc.shape != (len(classes),):
        raise ValueError(f"{len(classes)} class names but accuracies of shape {acc.shape}")
    # Sort ascending: barh puts index 0 at the bottom, so the best class ends up on top.
    order = np.argsort(np.where(np.isnan(acc), -1.0, acc), kind="stable")
    counts = None if support is None else [int(n) for n in _to_numpy(support).tolist()]
    if counts is not None and len(counts) != len(classes):
        raise ValueError(f"{len(classes)} class names but {len(counts)} support counts")
    names = [str(classes[i]) + ("" if counts is None else f" (n={counts[i]})") for i in order]
    vals = acc[order]

    fig, ax, owned = _figure_and_axes(ax, (7.0, max(3.0, 0.32 * len(names) + 1.3)))
    y = np.arange(len(names))
    ax.barh(y, np.nan_to_num(vals, nan=0.0), color="tab:blue", height=0.7)
    for yi, v, i in zip(y, vals, order):
        label = "n/a" if np.isnan(v) else f"{v:.2f}"
        if counts is not None and not np.isnan(v):
            label += f"  ({round(v * counts[i])}/{counts[i]})"
        # White box so the dashed "overall" line, often right there, does not cross the digits.
        ax.text((0.0 if np.isnan(v) else v) + 0.01, yi, label, va="center", fontsize=8, zorder=4,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.85})
    if overall is not None:
        ax.axvline(overall, color="black", linestyle="--", linewidth=1.2, zorder=3,
                   label=f"overall {overall:.3f}")
        # Bottom right is where the shortest bars leave empty space.
        ax.legend(loc="lower right", fontsize=8)

    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=9)
    ax.set_xlim(0.0, 1.1 if counts is None else 1.25)  # room for the value past a bar at 1.00
    ax.set_xticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])  # no tick in that room: accuracy stops at 1
    ax.set_xlabel("Accuracy")
    ax.set_title(title if title is not None else "Per-class accuracy")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    if owned:
        fig.tight_layout()
    return fig


# ------------------------------------------------------------------------- images


def show_images(
    images: Sequence[Any],
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 5,
    size: float = 2.5,
    dpi: float | None = None,
) -> Figure:
    """A grid of images without axes.

    Args:
        images: PIL images, or (H, W) / (H, W, 3) arrays or tensors, uint8 (0..255) or
            float in [0, 1] (clipped); (3, H, W) tensors are transposed.
        titles: optional caption per image.
        ncols: at most this many images per row.
        size: inches per grid cell.
        dpi: pixels per inch of the figure (default: matplotlib's); photos stored in a
            notebook take far less room at 72 than at 100.

    Returns:
        The Figure, with one axes (holding one image) per input image.
    """
    if len(images) == 0:
        raise ValueError("show_images: no images given")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    nrows, cols = _grid(len(images), ncols)
    # Constrained layout: tight_layout lets small titles collide with the row above.
    fig = _new_figure((size * cols, size * nrows + (0.3 * nrows if titles else 0.0)), layout="constrained")
    if dpi is not None:
        fig.set_dpi(dpi)
    for i, img in enumerate(images):
        ax = fig.add_subplot(nrows, cols, i + 1)
        arr = _image_to_array(img)
        if arr.ndim == 2:
            # Fix the range so a dim grey image is not stretched to full contrast.
            ax.imshow(arr, cmap="gray", vmin=0, vmax=255 if arr.dtype == np.uint8 else 1.0)
        else:
            ax.imshow(arr)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
        ax.set_axis_off()
    return fig


def plot_activation_maps(
    maps: Any,
    *,
    n: int = 16,
    ncols: int = 8,
    title: str | None = None,
    cmap: str = "viridis",
    size: float = 1.5,
) -> Figure:
    """The first ``n`` channels of a feature map, one small image each.

    Args:
        maps: (C, H, W) or (1, C, H, W) array or tensor.
        n: number of channels shown (capped at C).
        ncols: channels per row.
        title: optional figure title.
        cmap: colour map.
        size: inches per channel (smaller figures are lighter notebooks).

    Returns:
        The Figure, one axes (one image, titled with the channel index) per channel. Each
        channel is scaled to its own min / max, since channel magnitudes differ widely.
    """
    arr = _to_numpy(maps)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"expected activation maps of shape (C, H, W) or (1, C, H, W), got {arr.shape}")
    count = max(1, min(n, arr.shape[0]))
    nrows, cols = _grid(count, ncols)
    fig = _new_figure((size * cols, size * nrows + (0.5 if title else 0.0)), layout="constrained")
    for c in range(count):
        ax = fig.add_subplot(nrows, cols, c + 1)
        ax.imshow(_minmax(arr[c]), cmap=cmap, vmin=0.0, vmax=1.0)
        ax.set_title(f"#{c}", fontsize=7)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def _minmax(m: np.ndarray) -> np.ndarray:
    """(H, W) -> float32 (H, W) in [0, 1]; a constant map (e.g. dead ReLU) becomes all 0."""
    m = m.astype(np.float32)
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


# ------------------------------------------------------------------------- curves


def plot_layer_curve(
    layers: Sequence[str],
    accuracies: Any,
    *,
    dims: Any | None = None,
    times: Any | None = None,
    title: str | None = None,
) -> Figure:
    """Accuracy per layer, layers on a categorical x axis in the order given.

    Args:
        layers: L layer names (e.g. "pool5", "relu6", "relu7").
        accuracies: L floats in [0, 1].
        dims: optional L feature dimensions, drawn on a right-hand log axis.
        times: optional L extraction times in seconds, on another right-hand axis.
        title: defaults to "Accuracy per layer".

    Returns:
        The Figure: 1 axes, plus one twin axes for each of ``dims`` / ``times`` given.
    """
    acc = _to_numpy(accuracies).astype(np.float64)
    if acc.shape != (len(layers),):
        raise ValueError(f"{len(layers)} layers but accuracies of shape {acc.shape}")
    x = np.arange(len(layers))
    n_twins = (dims is not None) + (times is not None)
    fig = _new_figure((max(6.0, 0.8 * len(layers) + 3.0) + 0.8 * n_twins, 4.5))
    ax = fig.add_subplot()

    lines = ax.plot(x, acc, "o-", color="tab:blue", label="accuracy")
    for xi, a in zip(x, acc):
        if np.isfinite(a):
            ax.annotate(f"{a:.3f}", (xi, a), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=8, color="tab:blue")
    ax.set_xticks(x)
    many = len(layers) > 6
    ax.set_xticklabels(layers, rotation=30 if many else 0, ha="right" if many else "center")
    ax.set_xlabel("Layer")
    ax.set_ylabel("Test accuracy", color="tab:blue")
    ax.margins(y=0.12)  # headroom for the value labels above the points
    ax.grid(alpha=0.3)

    if dims is not None:
        twin = _twin_axis(ax, 0, "Feature dimension (log)", "tab:orange")
        twin.set_yscale("log")
        lines += twin.plot(x, _to_numpy(dims).astype(np.float64), "s--", color="tab:orange",
                           label="dimension")
    if times is not None:
        twin = _twin_axis(ax, int(dims is not None), "Extraction time (s)", "tab:green")
        lines += twin.plot(x, _to_numpy(times).astype(np.float64), "^:", color="tab:green", label="time (s)")

    if n_twins:
        # One legend for all axes, below the plot: "best" only sees the first axes' data
        # and would happily cover the twins' curves.
        ax.legend(lines, [ln.get_label() for ln in lines], loc="upper center", fontsize=8,
                  bbox_to_anchor=(0.5, -0.16 if len(layers) <= 6 else -0.24), ncol=len(lines), frameon=False)
    ax.set_title(title if title is not None else "Accuracy per layer")
    fig.tight_layout()
    return fig


def _twin_axis(ax: Axes, index: int, label: str, color: str) -> Axes:
    """A right-hand twin y axis; the second one is pushed outwards so the two don't overlap."""
    twin = ax.twinx()
    if index:
        twin.spines["right"].set_position(("axes", 1.15))
    twin.set_ylabel(label, color=color)
    twin.tick_params(axis="y", colors=color)
    return twin


def plot_training_curves(history: Mapping[str, Sequence[float]], title: str | None = None) -> Figure:
    """Loss and accuracy per epoch, side by side.

    Args:
        history: lists of per-epoch floats under "train_loss", "val_loss", "train_acc",
            "val_acc"; any of them may be missing or empty.
        title: optional figure title.

    Returns:
        The Figure with 2 axes (loss, accuracy); x axis = epoch, starting at 1.
    """
    from matplotlib.ticker import MaxNLocator

    fig = _new_figure((10.0, 4.0))
    panels = (("Loss", ("train_loss", "val_loss")), ("Accuracy", ("train_acc", "val_acc")))
    for i, (name, keys) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        drawn = False
        for key, style in zip(keys, ("o-", "s--")):
            values = history.get(key)
            if values is None or len(values) == 0:
                continue
            y = _to_numpy(values).astype(np.float64)
            ax.plot(np.arange(1, len(y) + 1), y, style, markersize=4, label=key.split("_")[0])
            drawn = True
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        # Epochs are whole numbers; stop matplotlib from ticking at 1.5, 2.5, ...
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------ tensors


def plot_data_efficiency(rows: Sequence[Any], *, chance: float | None = None,
                         title: str | None = None) -> Figure:
    """Test accuracy against training photos per class, two models on one plot.

    Args:
        rows: :class:`tplib.finetune.efficiency.EfficiencyRow` items (``per_class``,
            ``head_accuracy``, ``scratch_accuracy``), one per size.
        chance: the accuracy of guessing (1 / number of classes), drawn as a line.
        title: optional axes title.

    Returns:
        The Figure; x axis = photos per class (log scale), y axis = test accuracy.
    """
    fig = _new_figure((6.5, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    n = [r.per_class for r in rows]
    ax.plot(n, [r.head_accuracy for r in rows], "o-", label="frozen pretrained base + new head")
    ax.plot(n, [r.scratch_accuracy for r in rows], "s--", label="small CNN from scratch")
    if chance is not None:
        ax.axhline(chance, color="0.5", linestyle=":", linewidth=1, label=f"chance ({chance:.2f})")
    ax.set_xscale("log")
    ax.set_xticks(n, [str(v) for v in n])
    ax.minorticks_off()
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("training photos per class")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_unfreezing(comparison: Any, *, title: str | None = None) -> Figure:
    """Test accuracy of each fine-tuning set-up, one dot per seed, the mean as a bar.

    Args:
        comparison: :class:`tplib.finetune.unfreezing.UnfreezeComparison` (``setups()``,
            ``accuracies(k)``, ``label(k)``).
        title: optional axes title.

    Returns:
        The Figure; x axis = set-ups (frozen base first), y axis = test accuracy, zoomed
        on the measured range so that differences of a few photos stay visible.
    """
    fig = _new_figure((6.5, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    setups = comparison.setups()
    names = []
    for i, k in enumerate(setups):
        acc = np.asarray(comparison.accuracies(k))
        names.append(comparison.label(k, sep="\n"))
        ax.bar(i, acc.mean(), width=0.6, color=f"C{i}", alpha=0.35)
        ax.plot(np.full(len(acc), i) + np.linspace(-0.12, 0.12, len(acc)), acc, "o", color=f"C{i}",
                label="one seed" if i == 0 else None)
        ax.text(i, acc.max(), f"{acc.mean():.3f}", ha="center", va="bottom", fontsize=9)
    every = np.concatenate([comparison.accuracies(k) for k in setups])
    spread = max(every.max() - every.min(), 0.01)
    ax.set_ylim(every.min() - 1.5 * spread, every.max() + 1.0 * spread)
    ax.set_xticks(range(len(setups)), names)
    ax.set_ylabel("test accuracy (zoomed: the axis does not start at 0)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def imagenet_denormalize(tensor: Any, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo ``Normalize(mean, std)`` so a network input can be shown as an image.

    Args:
        tensor: (3, H, W) (or (1, 3, H, W)) normalised image, array or tensor.
        mean, std: the 3 per-channel values used for normalising.

    Returns:
        (H, W, 3) float32 array in [0, 1] (clipped: normalisation round-off and
        augmentations can step slightly outside).
    """
    arr = _to_numpy(tensor).astype(np.float32)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {arr.shape}")
    m = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    return np.clip(np.transpose(arr * s + m, (1, 2, 0)), 0.0, 1.0)


# ------------------------------------------------------------ notebooks 01, 02, 03


def plot_layer_parameters(
    rows: Any,
    *,
    log: bool = True,
    total: int | None = None,
    title: str | None = None,
) -> Figure:
    """Bar plot of the parameters of each layer that has some (notebook 01).

    Args:
        rows: a :class:`tplib.predict.LayerTable` (or any sequence of rows with ``.layer``,
            ``.params`` and optionally ``.kind``), or a mapping layer -> parameter count.
            Layers without parameters (ReLU, pooling) are left out.
        log: logarithmic y axis (the counts span five orders of magnitude in VGG16).
        total: the model's total, for the share printed above each bar of 1% or more;
            defaults to ``rows.total`` when there is one, else the sum of the rows.
        title: defaults to "Parameters per layer".

    Returns:
        The Figure; its axes hold one bar per layer with parameters. Fully connected
        (``Linear``) layers are drawn in another colour.
    """
    if isinstance(rows, Mapping):
        items = [(str(k), int(v), "") for k, v in rows.items()]
    else:
        items = [(str(r.layer), int(r.params), str(getattr(r, "kind", ""))) for r in rows]
        total = total if total is not None else getattr(rows, "total", None)
    items = [it for it in items if it[1] > 0]
    if not items:
        raise ValueError("plot_layer_parameters: no layer has parameters")
    total = int(total) if total else sum(p for _, p, _ in items)
    names = [n for n, _, _ in items]
    counts = np.array([p for _, p, _ in items], dtype=np.float64)
    is_fc = [k == "Linear" for _, _, k in items]
    colors = ["tab:red" if fc else "tab:blue" for fc in is_fc]

    fig = _new_figure((max(6.0, 0.42 * len(names) + 2.0), 4.2))
    ax = fig.add_subplot()
    x = np.arange(len(names))
    ax.bar(x, counts, color=colors)
    for xi, c in zip(x, counts):
        share = c / total
        if share >= 0.01:
            ax.annotate(f"{100 * share:.0f}%", (xi, c), textcoords="offset points", xytext=(0, 3),
                        ha="center", fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.15)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("parameters" + (" (log scale)" if log else ""))
    if any(is_fc) and not all(is_fc):
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color="tab:blue", label="convolution"),
                           Patch(color="tab:red", label="fully connected")], fontsize=8, loc="upper left")
    ax.set_title(title if title is not None else f"Parameters per layer (total {total:,})")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return fig


def _is_topk(x: Any) -> bool:
    """True for one top-k list [(name, probability), ...] (not a list of such lists)."""
    return (isinstance(x, Sequence) and len(x) > 0 and isinstance(x[0], Sequence)
            and len(x[0]) == 2 and isinstance(x[0][0], str))


def plot_topk(
    topk: Any,
    images: Any | None = None,
    titles: Sequence[str] | None = None,
) -> Figure:
    """Top-k class names and confidences as horizontal bars, one row per image (notebook 02).

    Args:
        topk: one top-k list ``[(class name, probability), ...]`` best first (what
            :func:`tplib.predict_topk` gives per image), or a list of such lists.
        images: optional image (or list of images, one per top-k list) drawn to the left
            of its bars: PIL images, arrays or tensors as in :func:`show_images`.
        titles: optional title per row (e.g. the photo's name).

    Returns:
        The Figure: per row, an image axes (when images are given) and a bar axes with
        k bars, best on top, each labelled with its probability.
    """
    lists = [topk] if _is_topk(topk) else list(topk)
    if not lists or not all(_is_topk(t) for t in lists):
        raise ValueError("plot_topk: expected [(class name, probability), ...] or a list of those")
    if images is not None and (hasattr(images, "mode") or hasattr(images, "shape")):
        images = [images]
    if images is not None and len(images) != len(lists):
        raise ValueError(f"{len(images)} images for {len(lists)} top-k lists")
    if titles is not None and len(titles) != len(lists):
        raise ValueError(f"{len(titles)} titles for {len(lists)} top-k lists")
    k = max(len(t) for t in lists)
    row_h = max(1.6, 0.3 * k + 0.5)
    fig = _new_figure((7.0 if images is not None else 5.5, row_h * len(lists)), layout="constrained")
    cols = 2 if images is not None else 1
    grid = fig.add_gridspec(len(lists), cols, width_ratios=[1, 2.2] if cols == 2 else [1])
    for r, top in enumerate(lists):
        if images is not None:
            iax = fig.add_subplot(grid[r, 0])
            iax.imshow(_image_to_array(images[r]))
            iax.set_axis_off()
        ax = fig.add_subplot(grid[r, cols - 1])
        names = [str(n) for n, _ in top][::-1]
        probs = np.array([float(p) for _, p in top], dtype=np.float64)[::-1]
        y = np.arange(len(names))
        ax.barh(y, probs, color=["tab:blue"] * (len(names) - 1) + ["tab:orange"], height=0.7)
        for yi, p in zip(y, probs):
            ax.text(p + 0.01, yi, f"{p:.3f}", va="center", fontsize=8)
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=9)
        ax.set_xlim(0.0, 1.15)
        ax.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0])
        ax.set_xlabel("probability (softmax)", fontsize=8)
        if titles is not None:
            ax.set_title(str(titles[r]), fontsize=10)
    return fig


def plot_filters(weight: Any, *, n: int = 64, ncols: int = 16, title: str | None = None) -> Figure:
    """The filters of a convolution as small tiles (notebook 03: first-layer filters).

    Args:
        weight: (C_out, C_in, kh, kw) array or tensor (a ``Conv2d``'s ``.weight``).
        n: at most this many filters are drawn.
        ncols: tiles per row.
        title: optional figure title.

    Returns:
        The Figure, one axes per filter. With C_in = 3 each filter is drawn as an RGB
        tile, scaled to its own min / max (a bright red square: a large positive weight
        on the red channel at that position; dark: negative weights); with another C_in,
        the mean over input channels in grey. Tiles are drawn with nearest-neighbour
        pixels: a 3x3 filter is 9 squares.
    """
    w = _to_numpy(weight).astype(np.float32)
    if w.ndim != 4:
        raise ValueError(f"expected a (C_out, C_in, kh, kw) weight, got shape {w.shape}")
    count = max(1, min(n, w.shape[0]))
    nrows, cols = _grid(count, ncols)
    fig = _new_figure((0.75 * cols, 0.75 * nrows + (0.5 if title else 0.1)), layout="constrained")
    for c in range(count):
        ax = fig.add_subplot(nrows, cols, c + 1)
        f = w[c]
        lo, hi = float(f.min()), float(f.max())
        f = (f - lo) / (hi - lo) if hi > lo else np.full_like(f, 0.5)
        if f.shape[0] == 3:
            ax.imshow(np.transpose(f, (1, 2, 0)), interpolation="nearest")
        else:
            ax.imshow(f.mean(axis=0), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"#{c}", fontsize=6)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def plot_activation_channel(
    maps: Any,
    channel: int,
    *,
    image: Any | None = None,
    title: str | None = None,
    cmap: str = "viridis",
) -> Figure:
    """One channel of a layer's activation maps, beside the input photo (notebook 03's view).

    Args:
        maps: (C, H, W) array or tensor (:func:`tplib.activations` for one layer).
        channel: index in 0..C-1.
        image: optional photo drawn on the left (PIL image, array or tensor).
        title: optional figure title.
        cmap: colour map; the map keeps its own value range (colour bar shown).

    Returns:
        The Figure: an image axes (when ``image`` is given), the map's axes and its colour bar.
    """
    arr = _to_numpy(maps)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"expected activation maps of shape (C, H, W), got {arr.shape}")
    if not 0 <= int(channel) < arr.shape[0]:
        raise ValueError(f"channel {channel} out of range 0..{arr.shape[0] - 1}")
    channel = int(channel)
    m = arr[channel].astype(np.float32)
    fig = _new_figure((5.6 if image is not None else 3.3, 2.8), layout="constrained")
    if image is not None:
        iax = fig.add_subplot(1, 2, 1)
        iax.imshow(_image_to_array(image))
        iax.set_axis_off()
        iax.set_title("input", fontsize=9)
    ax = fig.add_subplot(1, 2 if image is not None else 1, 2 if image is not None else 1)
    shown = ax.imshow(m, cmap=cmap)
    ax.set_title(f"channel {channel} of {arr.shape[0]} ({m.shape[0]}x{m.shape[1]})", fontsize=9)
    ax.set_axis_off()
    fig.colorbar(shown, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


# ------------------------------------------------------- notebooks 04 and 05


def plot_class_counts(counts: Mapping[str, Mapping[str, int]], *, title: str | None = None) -> Figure:
    """Images per class, one group of horizontal bars per class, one bar per split.

    Args:
        counts: split name -> {class name: number of images}, e.g.
            ``{"train": data.train.counts(), "test": data.test.counts()}``; the classes
            of the first split give the order (first class on top).
        title: defaults to "Images per class".

    Returns:
        The Figure; its axes hold one bar patch per (split, class), each labelled with
        its count.
    """
    splits = list(counts)
    if not splits:
        raise ValueError("plot_class_counts: no split given")
    classes = list(counts[splits[0]])
    k, m = len(classes), len(splits)
    from matplotlib.ticker import MaxNLocator

    fig, ax, _ = _figure_and_axes(None, (7.0, max(3.0, (0.18 + 0.1 * m) * k + 1.3)))
    height = 0.8 / m
    y = np.arange(k)[::-1]  # first class on top
    top = 1
    for s, split in enumerate(splits):
        values = np.array([int(counts[split].get(c, 0)) for c in classes])
        top = max(top, int(values.max(initial=0)))
        pos = y + (m - 1) / 2 * height - s * height
        ax.barh(pos, values, height=height * 0.95, label=f"{split} ({int(values.sum()):,})")
        for yi, v in zip(pos, values):
            ax.text(v, yi, f" {v}", va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels(classes, fontsize=9)
    ax.set_xlim(0, top * 1.12)
    ax.set_xlabel("Number of images")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title if title is not None else "Images per class", pad=18)
    # above the bars, where no bar can hide under it
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=m, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return fig


def show_confused(
    paths: Sequence[Any],
    y_true: Any,
    y_pred: Any,
    classes: Sequence[str],
    true: int,
    predicted: int,
    *,
    max_images: int = 8,
    ncols: int = 4,
    size: float = 2.0,
    dpi: float | None = 72,
) -> Figure:
    """The test images of class ``true`` that were predicted as ``predicted``.

    Args:
        paths: (n,) image files, in the order of the labels (``test.paths``).
        y_true, y_pred: (n,) int labels and predictions (``test.labels``,
            ``result.predictions``).
        classes: K class names; true, predicted: class indices.
        max_images: show at most this many (the first ones, in file order).
        ncols, size, dpi: images per row, inches per image, pixels per inch (see
            :func:`show_images`).

    Returns:
        The Figure: one axes per image shown (file name as caption), titled "true A,
        predicted B: shown of total"; a single text axes when there is no such image.
        Taught in notebook 04 (the most confused pairs).
    """
    from .images import load_image

    y_true, y_pred = np.asarray(_to_numpy(y_true)), np.asarray(_to_numpy(y_pred))
    if not (len(paths) == len(y_true) == len(y_pred)):
        raise ValueError(f"{len(paths)} paths, {len(y_true)} labels and {len(y_pred)} predictions")
    idx = np.flatnonzero((y_true == true) & (y_pred == predicted))
    name_t, name_p = str(classes[true]), str(classes[predicted])
    if len(idx) == 0:
        fig = _new_figure((6.0, 1.2))
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, f"no test image of {name_t} was predicted as {name_p}", ha="center",
                va="center")
        ax.set_axis_off()
        return fig
    shown = idx[:max_images]
    from pathlib import Path

    fig = show_images([load_image(paths[i]) for i in shown], [Path(str(paths[i])).name for i in shown],
                      ncols=ncols, size=size, dpi=dpi)
    what = "correct" if true == predicted else f"predicted {name_p}"
    fig.suptitle(f"true {name_t}, {what}: {len(shown)} shown of {len(idx)}")
    return fig


def plot_c_curve(
    Cs: Sequence[float],
    cv_scores: Any,
    *,
    test_scores: Any | None = None,
    best_C: float | None = None,
    title: str | None = None,
) -> Figure:
    """Accuracy against the SVM's C on a log axis.

    Args:
        Cs: the C values tried (any order; drawn sorted).
        cv_scores: one cross-validation accuracy per C (a sequence in the order of
            ``Cs``, or a {C: accuracy} dict such as ``tplib.search_C(...).scores``).
        test_scores: optional test accuracies per C, drawn dashed (to show what
            tuning on the test split would report, notebook 05).
        best_C: marked with a vertical line (the C chosen by cross-validation).
        title: defaults to "Accuracy against C".

    Returns:
        The Figure, 1 axes with a log x axis and one line per curve given.
    """
    Cs = [float(c) for c in Cs]

    def values(scores):
        if isinstance(scores, Mapping):
            return np.array([float(scores[c]) for c in Cs])
        arr = _to_numpy(scores).astype(np.float64)
        if arr.shape != (len(Cs),):
            raise ValueError(f"{len(Cs)} values of C but scores of shape {arr.shape}")
        return arr

    order = np.argsort(Cs)
    x = np.asarray(Cs)[order]
    fig, ax, _ = _figure_and_axes(None, (6.5, 4.0))
    ax.plot(x, values(cv_scores)[order], "o-", color="tab:blue", label="cross-validation (train split)")
    if test_scores is not None:
        ax.plot(x, values(test_scores)[order], "s--", color="tab:red", alpha=0.8, label="test split")
    if best_C is not None:
        ax.axvline(float(best_C), color="black", linestyle=":", linewidth=1.2,
                   label=f"C chosen by cross-validation ({float(best_C):g})")
    ax.set_xscale("log")
    ax.set_xlabel("C (log scale)")
    ax.set_ylabel("Accuracy")
    ax.set_title(title if title is not None else "Accuracy against C")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_pca_curve(
    n_components: Sequence[int],
    accuracies: Any,
    *,
    fit_seconds: Any | None = None,
    baseline: float | None = None,
    title: str | None = None,
) -> Figure:
    """Accuracy (and optionally fit time) against the number of PCA components.

    Args:
        n_components: the numbers of components tried (log-2 x axis).
        accuracies: one test accuracy per value.
        fit_seconds: optional fit times (s), on a right-hand axis.
        baseline: the accuracy without PCA, drawn as a dashed horizontal line.
        title: defaults to "PCA before the SVM".

    Returns:
        The Figure: 1 axes, plus a twin axes when ``fit_seconds`` is given.
    """
    n = np.asarray([int(v) for v in n_components])
    acc = _to_numpy(accuracies).astype(np.float64)
    if acc.shape != n.shape:
        raise ValueError(f"{len(n)} component counts but accuracies of shape {acc.shape}")
    fig, ax, _ = _figure_and_axes(None, (6.5 + (0.8 if fit_seconds is not None else 0.0), 4.0))
    lines = ax.plot(n, acc, "o-", color="tab:blue", label="accuracy")
    for xi, a in zip(n, acc):
        ax.annotate(f"{a:.3f}", (xi, a), textcoords="offset points", xytext=(0, 6), ha="center",
                    fontsize=8, color="tab:blue")
    if baseline is not None:
        lines.append(ax.axhline(baseline, color="black", linestyle="--", linewidth=1.0,
                                label=f"no PCA ({baseline:.3f})"))
    ax.set_xscale("log", base=2)
    ax.set_xticks(n)
    ax.set_xticklabels([str(v) for v in n])
    ax.set_xlabel("PCA components (log scale)")
    ax.set_ylabel("Test accuracy", color="tab:blue")
    ax.margins(y=0.12)
    ax.grid(alpha=0.3)
    if fit_seconds is not None:
        twin = _twin_axis(ax, 0, "Fit time (s)", "tab:green")
        lines += twin.plot(n, _to_numpy(fit_seconds).astype(np.float64), "^:", color="tab:green",
                           label="fit time (s)")
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="lower right")
    ax.set_title(title if title is not None else "PCA before the SVM")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------ mistakes (notebook 06)


def show_misclassified(
    paths: Sequence[Any],
    labels: Any,
    predictions: Any,
    classes: Sequence[str],
    *,
    max_images: int = 10,
    ncols: int = 5,
    grayscale: bool = False,
) -> Figure:
    """The misclassified images of an evaluation, titled "true -> predicted".

    Args:
        paths: (n,) image files; labels, predictions: (n,) class indices (e.g. an
            :class:`tplib.finetune.Evaluation`'s ``paths``, ``labels``, ``predictions``).
        classes: K class names.
        max_images: show at most this many mistakes (the first ones, in row order).
        grayscale: show the photos in grayscale (as a grayscale model saw them).

    Returns:
        A :func:`show_images` Figure; with no mistake at all, a small Figure saying so.
    """
    from .images import load_rgb

    y, pred = _to_numpy(labels).astype(int), _to_numpy(predictions).astype(int)
    if not (len(paths) == len(y) == len(pred)):
        raise ValueError(f"{len(paths)} paths, {len(y)} labels, {len(pred)} predictions")
    wrong = np.flatnonzero(y != pred)
    if len(wrong) == 0:
        fig = _new_figure((5.0, 1.0))
        fig.text(0.5, 0.5, f"no misclassified image among {len(y)}", ha="center", va="center")
        return fig
    shown = wrong[:max_images]
    images = []
    for i in shown:
        img = load_rgb(paths[i])
        img.thumbnail((256, 256))  # a gallery cell is 2.5 inches: no need for more pixels
        images.append(img.convert("L") if grayscale else img)
    titles = [f"{classes[y[i]]} -> {classes[pred[i]]}" for i in shown]
    fig = show_images(images, titles, ncols=min(ncols, len(shown)))
    more = f" (the first {len(shown)})" if len(wrong) > len(shown) else ""
    fig.suptitle(f"{len(wrong)} misclassified of {len(y)}{more}: true -> predicted", fontsize=10)
    return fig
