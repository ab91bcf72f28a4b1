"""Interactive views for class demos: thin ipywidgets views over plain functions.

Every view here draws with a plain function of tplib (the same one a non-interactive
cell calls beside it, so a static render on GitHub or under nbval still shows the
result) and only adds controls. The views use the widget API shared by ipywidgets
7.7.1 (Google Colab's, which must not be upgraded there) and 8 (JupyterLab 4):
``interactive``, ``IntSlider``, ``FloatLogSlider``, ``Dropdown``, ``FileUpload``,
``Output``, ``HBox``/``VBox`` and ``observe``. ``tests/test_browser.py`` drives them
in a real JupyterLab in headless Chromium.

ipywidgets is imported when a view is made, not with tplib (it is in the
``notebooks`` extra).
"""
from __future__ import annotations

import math

from .defaults import DEFAULT_C


def _widgets():
    """The ipywidgets module, or a one-line error saying how to install it."""
    try:
        import ipywidgets
    except ImportError as exc:
        from .errors import TplibError

        raise TplibError('interactive views need ipywidgets: pip install "tplib[notebooks]" '
                         "(JupyterLab 4 needs ipywidgets 8; Colab's 7.7.1 works too)") from exc
    return ipywidgets


def show_figure(out, fig) -> None:
    """Replace what the Output widget ``out`` shows by the matplotlib Figure ``fig``.

    The figure is rendered to PNG here (at its own dpi, tight bounding box, as the
    inline backend does) and set as the widget's ``outputs``, the way
    ``Output.append_display_data`` adds an output. Nothing is captured from the
    kernel's display stream, so it works the same in ipywidgets 7 and 8, inside a
    kernel or not (tests read ``out.outputs`` back), and it avoids an nbclient race
    (jupyter/nbclient#312) that can hang ``jupyter nbconvert --execute`` when an
    Output widget captures displays.
    """
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    width, height = fig.get_size_inches() * fig.dpi
    out.outputs = ({"output_type": "display_data", "metadata": {},
                    "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                             "text/plain": f"<Figure size {width:g}x{height:g} with "
                                           f"{len(fig.axes)} Axes>"}},)


def _set_text(out, text: str) -> None:
    """Make the Output widget ``out`` show ``text`` (replacing what it showed).

    Sets the widget's ``outputs`` directly: the same in ipywidgets 7 and 8, inside a
    kernel or not (so a headless test can read it back).
    """
    out.outputs = ({"output_type": "stream", "name": "stdout", "text": text + "\n"},)


# ------------------------------------------------------------------ notebooks 01-03
def uploaded_files(value) -> list[tuple[str, bytes]]:
    """[(file name, bytes)] from a ``FileUpload``'s ``.value``, in ipywidgets 7 or 8.

    ipywidgets 8 gives a tuple of dicts with ``name`` and ``content`` (a memoryview);
    7.7.1 (Colab's) gives a dict file name -> {"metadata": {...}, "content": bytes}.
    """
    if isinstance(value, dict):
        return [(str(name), bytes(item["content"])) for name, item in value.items()]
    return [(str(item.get("name", "upload")), bytes(item["content"])) for item in value or ()]


def _show_text(out, text: str) -> None:
    _set_text(out, text)


# ------------------------------------------------------------------ argument checks
# A view is built once and then only reacts to its controls: every argument is checked
# here, before the first draw, so a bad one is one line, not a traceback from ipywidgets
# (an empty Dropdown, a slider with max < min) or a value a slider silently clamps.
def _photo_sources(photos) -> dict:
    """{name: path or PIL image}: ``photos``, or the sample photos when None."""
    from .errors import InputError
    from .samples import sample_photos

    if photos is None:
        return dict(sample_photos())
    try:
        sources = dict(photos)
    except (TypeError, ValueError):
        raise InputError(f"photos must be a dict {{name: image file or PIL image}}, not "
                         f"{type(photos).__name__}") from None
    if not sources:
        raise InputError("photos is empty: give {name: image file or PIL image}, or leave it out "
                         "for the sample photos (tplib.sample_photos())")
    return sources


def _layer_names(layers, default) -> list[str]:
    """``layers`` as a non-empty list of names (None: ``default()``)."""
    from .errors import OptionError

    if layers is None:
        layers = default()
    elif isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise OptionError("layers is empty: give one or more layer names, or leave it out for "
                          "the default ones")
    return layers


def _check_in_range(name: str, value, low, high, hint: str) -> None:
    """``value`` within a slider's [low, high], else a one-line :class:`OptionError`."""
    from .errors import OptionError

    if not low <= value <= high:
        raise OptionError(f"{name}={value:g} is outside the slider's range {low:g} to {high:g}: "
                          f"{hint}")


def topk_view(backbone, photos=None, k: int = 5):
    """Notebook 02: choose a photo, or upload one, and see its top-k ImageNet classes.

    A thin view over :func:`tplib.predict_topk` and :func:`tplib.viz.plot_topk` (the
    same calls the notebook makes just before it). ``photos``: {name: path or PIL
    image}, default :func:`tplib.sample_photos`. An upload is added to the photo list
    and shown; a file that is not an image gives one line instead of a figure.
    Predictions are computed once per photo. Returns the top widget (CSS class
    ``tplib-topk``); ``.photo``, ``.upload`` and ``.out`` are its controls and output.
    """
    from . import viz
    from .errors import ImageError
    from .images import image_from_bytes, load_rgb
    from .predict import predict_topk

    W = _widgets()
    sources = _photo_sources(photos)
    images, results = {}, {}

    def image(name):
        if name not in images:
            src = sources[name]
            images[name] = src if hasattr(src, "mode") else load_rgb(src)
        return images[name]

    def draw(name):
        if name not in results:
            results[name] = predict_topk(backbone, [image(name)], k)[0]
        show_figure(out, viz.plot_topk(results[name], images=[image(name)], titles=[name]))

    photo = W.Dropdown(options=list(sources), value=next(iter(sources)), description="photo")
    upload = W.FileUpload(accept="image/*", multiple=False, description="your photo")
    out = W.Output()
    busy = []

    def on_photo(change):
        if not busy:
            draw(change["new"])

    def on_upload(change):
        for fname, data in uploaded_files(change["new"]):
            try:
                img = image_from_bytes(data, fname)
            except ImageError as exc:
                _show_text(out, str(exc))
                continue
            name = f"upload: {fname}"
            sources[name], images[name] = img, img
            results.pop(name, None)
            busy.append(1)  # new options may reset the value: draw once, below
            try:
                if name not in photo.options:
                    photo.options = [*photo.options, name]
                photo.value = name
            finally:
                busy.pop()
            draw(name)

    photo.observe(on_photo, names="value")
    upload.observe(on_upload, names="value")
    box = W.VBox([W.HBox([photo, upload]), out])
    box.add_class("tplib-topk")
    box.photo, box.upload, box.out = photo, upload, out
    draw(photo.value)
    return box


def activation_browser(backbone, photos=None, layers=None, channel: int = 0):
    """Notebook 03: browse activation maps by photo, layer and channel.

    A thin view over :func:`tplib.activations` and :func:`tplib.viz.plot_activation_channel`.
    ``photos``: {name: path or PIL image} (default :func:`tplib.sample_photos`);
    ``layers``: layer names (default: every friendly layer with (C, H, W) maps). The maps
    of a (photo, layer) pair are computed once and kept, so moving the channel slider
    only redraws. Returns the top widget (CSS class ``tplib-activations``); ``.photo``,
    ``.layer``, ``.channel`` and ``.out`` are its controls and output.
    """
    from . import viz
    from .features import activations
    from .images import load_rgb
    from .predict import layer_table

    W = _widgets()
    sources = _photo_sources(photos)
    layers = _layer_names(layers, lambda: [row.layer for row in layer_table(backbone)
                                           if len(row.shape) == 3])
    shown_images, maps = {}, {}
    prep = backbone.preprocess

    def input_image(name):  # what the network sees: the photo resized to its input size
        if name not in shown_images:
            src = sources[name]
            shown_images[name] = prep.resize(src if hasattr(src, "mode") else load_rgb(src))
        return shown_images[name]

    def layer_maps(name, layer):
        if (name, layer) not in maps:
            maps[name, layer] = activations(backbone, input_image(name), layer)[layer]
        return maps[name, layer]

    photo = W.Dropdown(options=list(sources), value=next(iter(sources)), description="photo")
    layer = W.Dropdown(options=layers, value=layers[0], description="layer")
    first = layer_maps(photo.value, layer.value)
    slider = W.IntSlider(value=min(max(int(channel), 0), first.shape[0] - 1), min=0,
                         max=first.shape[0] - 1, description="channel", continuous_update=True)
    out = W.Output()
    busy = []

    def draw():
        m = layer_maps(photo.value, layer.value)
        fig = viz.plot_activation_channel(m, slider.value, image=input_image(photo.value),
                                          title=f"{photo.value}, {layer.value}")
        show_figure(out, fig)

    def on_pair(change):
        m = layer_maps(photo.value, layer.value)
        busy.append(1)  # changing max may move the value: draw once, here
        try:
            slider.value = min(slider.value, m.shape[0] - 1)
            slider.max = m.shape[0] - 1
        finally:
            busy.pop()
        draw()

    def on_channel(change):
        if not busy:
            draw()

    photo.observe(on_pair, names="value")
    layer.observe(on_pair, names="value")
    slider.observe(on_channel, names="value")
    box = W.VBox([W.HBox([photo, layer]), slider, out])
    box.add_class("tplib-activations")
    box.photo, box.layer, box.channel, box.out = photo, layer, slider, out
    draw()
    return box


# ======================================================== notebooks 04 and 05
def confusion_options(result, classes) -> list[tuple[str, tuple[int, int]]]:
    """Dropdown options for :func:`confusion_explorer`: ("true → predicted (count)",
    (true index, predicted index)), most frequent confusion first."""
    from .svm import most_confused

    return [(f"{p.true} → {p.predicted} ({p.count})", (p.true_index, p.predicted_index))
            for p in most_confused(result.confusion, classes, k=None)]


def confusion_explorer(result, test, *, max_images: int = 8):
    """Notebook 04: pick a (true, predicted) pair, see the test images confused that way.

    Args:
        result: the :class:`tplib.svm.SVMResult` of the test split (confusion, predictions).
        test: the test :class:`tplib.features.Features` (paths, labels, classes in row
            order, as the SVM saw them).
        max_images: gallery size.

    Returns:
        The view (a VBox with class ``tplib-confusion-explorer``): a Dropdown of the
        confused pairs ordered by count, a line of text and a gallery drawn by
        :func:`tplib.viz.show_confused`.
    """
    from . import viz

    W = _widgets()
    classes = list(test.classes)
    options = confusion_options(result, classes)
    pick = W.Dropdown(options=options or [("no confusion: every test image is right", (0, 0))],
                      description="true → predicted", style={"description_width": "initial"},
                      layout=W.Layout(width="420px"))
    text, gallery = W.Output(), W.Output()

    def draw(change=None):
        true, pred = pick.value
        n = int(result.confusion[true, pred])
        support = int(result.confusion[true].sum())
        _set_text(text, f"{n} of the {support} test images of {classes[true]} were predicted "
                        f"as {classes[pred]}")
        show_figure(gallery, viz.show_confused(test.paths, test.labels, result.predictions, classes,
                                               true, pred, max_images=max_images))

    pick.observe(draw, names="value")
    draw()
    box = W.VBox([pick, text, gallery])
    box.add_class("tplib-confusion-explorer")
    return box


def svm_line(result, layer: str, C: float, dim: int) -> str:
    """One line for :func:`svm_explorer`: layer, size, C, accuracy, fit time."""
    return (f"layer {layer} ({dim:,} values per image), C = {C:.3g}: test accuracy "
            f"{result.accuracy:.3f} ({result.n_correct}/{result.n_test}), fit {result.fit_seconds:.2f} s")


def svm_explorer(train, test, layers=None, *, C: float = DEFAULT_C,
                 C_range: tuple[float, float] = (-3.0, 2.0)):
    """Notebook 05: a C slider and a layer picker over features computed once.

    Args:
        train, test: :class:`tplib.features.Features` holding every layer offered
            (e.g. the layer sweep, ``pool="avg"``).
        layers: the layers offered (default: all those in ``train``).
        C: the starting C; C_range: (min, max) exponents of 10 for the slider.

    Returns:
        The view (a VBox with class ``tplib-svm-explorer``): a Dropdown (layer), a
        FloatLogSlider (C), a line of text (accuracy, fit time) and the per-class accuracy
        (:func:`tplib.viz.plot_per_class_accuracy`). Each (layer, C) is fitted once
        (:func:`tplib.svm_fit_score`) and kept.
    """
    from . import viz
    from .errors import OptionError
    from .svm import C_MAX, C_MIN, check_C, svm_fit_score

    W = _widgets()
    layers = _layer_names(layers, lambda: list(train.arrays))
    C = check_C(C)
    try:
        low, high = (float(e) for e in C_range)
    except (TypeError, ValueError):
        raise OptionError(f"C_range must be (min, max) exponents of 10, e.g. (-3, 2), not "
                          f"{C_range!r}") from None
    if not low < high:
        raise OptionError(f"C_range=({low:g}, {high:g}) must be (min, max) exponents of 10 with min < "
                          f"max, e.g. (-3, 2) for C from 0.001 to 100")
    lowest, highest = math.log10(C_MIN), math.log10(C_MAX)
    if low < lowest or high > highest:
        raise OptionError(f"C_range=({low:g}, {high:g}) goes beyond the C that LinearSVC can solve: "
                          f"give exponents of 10 from {lowest:g} to {highest:g}, e.g. (-3, 2)")
    _check_in_range("C", C, 10 ** low, 10 ** high, "widen C_range (exponents of 10)")
    layer_pick = W.Dropdown(options=layers, value=layers[-1], description="layer")
    c_slider = W.FloatLogSlider(value=C, base=10, min=C_range[0], max=C_range[1], step=0.25,
                                description="C", continuous_update=False, readout_format=".3g")
    text, plot = W.Output(), W.Output()
    results: dict = {}

    def fit(layer, c):
        key = (layer, round(float(c), 9))
        if key not in results:
            results[key] = svm_fit_score(train[layer], train.labels, test[layer], test.labels, C=c,
                                         n_classes=len(train.classes) or None)
        return results[key]

    def draw(change=None):
        layer, c = layer_pick.value, c_slider.value
        res = fit(layer, c)
        _set_text(text, svm_line(res, layer, c, int(train[layer].shape[1])))
        names = list(train.classes) or [str(i) for i in range(len(res.support))]
        show_figure(plot, viz.plot_per_class_accuracy(
            names, res.per_class_accuracy, overall=res.accuracy, support=res.support,
            title=f"Per-class accuracy: {layer}, C = {c:.3g}"))

    layer_pick.observe(draw, names="value")
    c_slider.observe(draw, names="value")
    draw()
    box = W.VBox([W.HBox([layer_pick, c_slider]), text, plot])
    box.add_class("tplib-svm-explorer")
    box.results = results  # what was fitted, for tests and curious users
    return box


# =============================================================================
# Notebook 06: fine-tuning a new head
# =============================================================================
def head_training_view(X_train, y_train, X_val, y_val, *, loss: str = "ce", lr: float = 3e-3,
                       epochs: int = 30, seed: int = 0):
    """Learning curves of a new head on cached features, for the learning rate, number of
    epochs and head size picked with the controls.

    Each setting trains a head with :func:`tplib.finetune.train_head` (milliseconds on
    cached features: the base is frozen) and draws :func:`tplib.viz.plot_training_curves`
    of its history, titled with the last validation accuracy; settings already tried
    are drawn from memory. X_*: (n, d) features, y_*: (n,) labels. Returns the top widget
    (CSS class ``tplib-head-training``).
    """
    from .errors import InputError
    from .finetune import train_head
    from .viz import plot_training_curves

    w = _widgets()
    if X_val is None or y_val is None or len(X_val) == 0:
        raise InputError("the validation split is empty: the view draws validation curves, give "
                         "features of held-out images as X_val, y_val (e.g. tplib.finetune."
                         "validation_split)")
    _check_in_range("lr", lr, 1e-5, 1.0, "give a learning rate from 1e-5 to 1")
    _check_in_range("epochs", epochs, 1, 100, "give 1 to 100 epochs")
    lr_slider = w.FloatLogSlider(value=lr, base=10, min=-5, max=0, step=0.25, description="learning rate",
                                 readout_format=".0e")
    epochs_slider = w.IntSlider(value=epochs, min=1, max=100, step=1, description="epochs")
    hidden = w.Dropdown(options=[("linear", 0), ("256 hidden units", 256)], value=0, description="head")
    out = w.Output()
    histories: dict[tuple, dict] = {}

    def draw(*_):
        key = (float(lr_slider.value), int(epochs_slider.value), int(hidden.value))
        if key not in histories:
            histories[key] = train_head(X_train, y_train, X_val, y_val, hidden=key[2], epochs=key[1],
                                        lr=key[0], loss=loss, seed=seed, progress=False).history
        history = histories[key]
        title = (f"lr {key[0]:.0e}, {key[1]} epochs, {'linear head' if not key[2] else '256 hidden units'}"
                 f": validation accuracy {history['val_acc'][-1]:.3f}")
        show_figure(out, plot_training_curves(history, title=title))

    for control in (lr_slider, epochs_slider, hidden):
        control.observe(draw, names="value")
    draw()
    box = w.VBox([w.HBox([lr_slider, epochs_slider, hidden]), out])
    box.add_class("tplib-head-training")
    return box
