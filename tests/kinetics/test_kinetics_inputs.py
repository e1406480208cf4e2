"""Bad input to fit_tac / fit_tacs raises InputError naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from tdt.errors import InputError
from tdt.kinetics import fit_tac, fit_tacs

T = [1.0, 4.0, 24.0, 48.0, 96.0]
Y = [10.0, 12.0, 8.0, 5.0, 2.0]


@pytest.mark.parametrize(
    ("times", "activity", "kwargs", "field"),
    [
        ([4.0, 1.0, 24.0, 48.0, 96.0], Y, {}, "times_h"),  # unsorted
        ([1.0, 4.0, 4.0, 48.0, 96.0], Y, {}, "times_h"),  # duplicate
        ([-1.0, 4.0, 24.0, 48.0, 96.0], Y, {}, "times_h"),  # negative time
        ([1.0, np.nan, 24.0, 48.0, 96.0], Y, {}, "times_h"),
        (T, [10.0, -1.0, 8.0, 5.0, 2.0], {}, "activity_mbq"),  # negative activity
        (T, [10.0, np.nan, 8.0, 5.0, 2.0], {}, "activity_mbq"),  # NaN
        (T, Y[:4], {}, "activity_mbq"),  # mismatched lengths
        (T[:3], Y[:3], {"model": "bi"}, "times_h"),  # fewer points than parameters
        (T[:2], Y[:2], {}, "times_h"),  # auto needs 3
        (T, Y, {"model": "quad"}, "model"),  # unknown model
        (T, Y, {"weights": "squared"}, "weights"),
        (T, Y, {"weights": [1.0, 1.0, -1.0, 1.0, 1.0]}, "weights"),
        (T, Y, {"nuclide": "not a nuclide"}, "nuclide"),
    ],
)
def test_bad_input_names_the_field(times, activity, kwargs, field):
    with pytest.raises(InputError, match=field):
        fit_tac(times, activity, **kwargs)


def test_unknown_model_suggests_close_name():
    with pytest.raises(InputError, match="Did you mean 'mono'"):
        fit_tac(T, Y, model="mon")


def test_batched_shape_errors():
    with pytest.raises(InputError, match="activity_mbq"):
        fit_tacs(T, np.asarray(Y))  # 1-D where (n_tacs, n_times) is expected
    with pytest.raises(InputError, match="chunk_size"):
        fit_tacs(T, np.asarray([Y]), chunk_size=0)
    with pytest.raises(InputError, match="n_starts"):
        fit_tacs(T, np.asarray([Y]), n_starts=0)
    with pytest.raises(InputError, match="solver"):
        fit_tacs(T, np.asarray([Y]), solver="bfgs")
    with pytest.raises(InputError, match="model"):
        fit_tacs(T, np.asarray([Y]), model="trapezoid")
