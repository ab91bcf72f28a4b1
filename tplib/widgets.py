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
