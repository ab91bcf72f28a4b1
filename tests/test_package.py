"""The public namespace (tplib/__init__.py): every export resolves, lazily; no exercise answer in it."""
import subprocess
import sys

import pytest

import tplib


def test_every_export_resolves_to_the_object_of_its_module():
    for name, module in tplib._EXPORTS.items():
        assert getattr(tplib, name) is getattr(getattr(tplib, module), name), name
    assert tplib.KNOWN_DATASETS is tplib.catalog.KNOWN_DATASETS
    assert sorted(tplib.__all__) == sorted(tplib._EXPORTS)


def test_notebook_04s_answer_is_not_in_the_students_namespace():
    """The lab's VGG16relu7 class is what notebook 04 asks the student to write."""
    assert "VGG16relu7" not in tplib.__all__ and "VGG16relu7" not in dir(tplib)
    with pytest.raises(AttributeError, match="has no attribute 'VGG16relu7'"):
        _ = tplib.VGG16relu7
    from tplib.models import VGG16relu7  # the reference the checks and tests use

    assert VGG16relu7.__module__ == "tplib.models"


def test_importing_tplib_and_its_records_loads_no_torch():
    code = ("import sys, tplib, tplib.catalog, tplib.defaults, tplib.registry, tplib.profile\n"
            "tplib.KNOWN_DATASETS\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
