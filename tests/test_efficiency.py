"""tplib.finetune.efficiency: test accuracy against training photos per class, frozen
pretrained base + head vs a small CNN from scratch (notebook 06, section 5).

The real comparison runs in notebook 06 under nbval (cats vs dogs, the ci subset: the
frozen EfficientNet-Lite0 at 0.94-0.99, the small CNN at 0.52-0.62, checked there by
expect_between on the smallest gap); here the mechanics on a tiny generated folder.
"""
from __future__ import annotations

import numpy as np
import pytest

from tplib.data import load_dataset
from tplib.errors import OptionError
from tplib.finetune import data_efficiency, efficiency_table
from tplib.finetune.efficiency import first_per_class


def test_first_per_class_keeps_the_order_and_nests():
    labels = np.array([1, 0, 1, 0, 0, 1, 1])
    assert first_per_class(labels, 1).tolist() == [0, 1]
    assert first_per_class(labels, 2).tolist() == [0, 1, 2, 3]
    assert first_per_class(labels, 9).tolist() == list(range(7))
    assert set(first_per_class(labels, 1)) <= set(first_per_class(labels, 2))


def test_every_size_trains_both_models_on_the_same_photos(image_folder, lite0):
    data = load_dataset(image_folder)
    rows = data_efficiency(lite0, data.train, data.test, sizes=(1, 2, 5, 2), steps=3,
                           min_epochs=2, head_epochs=5, progress=False)
    # sizes sorted, repeated ones given once, those above the smallest class (3) cut to it
    assert [r.per_class for r in rows] == [1, 2, 3]
    assert [r.n_train for r in rows] == [3, 6, 9]
    for r in rows:
        assert 0.0 <= r.head_accuracy <= 1.0 and 0.0 <= r.scratch_accuracy <= 1.0
        # 1 batch of <= 32 photos per epoch: at least 3 steps and 2 epochs
        assert r.scratch_epochs == 3 and r.scratch_seconds > 0
        # scored on all 6 test photos: accuracies are multiples of 1/6
        assert abs(r.head_accuracy * 6 - round(r.head_accuracy * 6)) < 1e-9
    table = efficiency_table(rows).splitlines()
    assert len(table) == 4 and "frozen base + head" in table[0]


@pytest.mark.parametrize("kwargs", [dict(steps=0), dict(min_epochs=-1), dict(sizes=(0,)),
                                    dict(head_lr=float("nan")), dict(lr=-1.0)])
def test_bad_settings_are_refused_before_any_work(image_folder, lite0, kwargs):
    data = load_dataset(image_folder)
    with pytest.raises(OptionError):
        data_efficiency(lite0, data.train, data.test, progress=False, **kwargs)
