"""tplib.experiments: arguments are checked before the first network runs."""
import pytest

from tplib.data import load_dataset
from tplib.errors import OptionError
from tplib.experiments import compare_networks


def test_compare_networks_checks_C_before_any_extraction(image_folder, monkeypatch):
    """Before: C=1e150 reached LinearSVC after the first network's extraction, and hung."""
    import tplib.features

    monkeypatch.setattr(tplib.features, "extract_features", lambda *a, **k: pytest.fail("work started"))
    data = load_dataset(image_folder)
    for C in (1e150, 0, "1"):
        with pytest.raises(OptionError, match="C must be|outside what LinearSVC can solve"):
            compare_networks(data, ["efficientnet_lite0"], C=C)


def test_one_network_name_is_one_row_not_one_per_letter(image_folder):
    rows = compare_networks(load_dataset(image_folder), "vgg16")  # its weights are not here
    assert [(r.name, r.available) for r in rows] == [("vgg16", False)]
    assert "vgg16-397923af.pth" == rows[0].weights_file
