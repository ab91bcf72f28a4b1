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
    """Replace what the Output widget ``out`` shows by the matplotlib Figure ``fig``."""
    from IPython.display import display

    with out:
        out.clear_output(wait=True)
        display(fig)


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
    from .finetune import train_head
    from .viz import plot_training_curves

    w = _widgets()
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
