"""The explorer's figure: the layered, cached blitted redraw and the direct PNG encoder.

Independent references: matplotlib's own full draw of the same figure (``savefig``, which
draws every artist, animated or not, in z-order) for the blitted picture, compared pixel by
pixel; Pillow's PNG decoder for the encoder (lossless: the decoded pixels are the canvas's).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from tdt.plotting import figure_png  # noqa: E402
from tdt.widgets import ScenarioExplorer, ScenarioInputs  # noqa: E402
from tdt.widgets._explorer_plot import canvas_png  # noqa: E402


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


@pytest.fixture(scope="module")
def explorer():
    ex = ScenarioExplorer(ScenarioInputs.example(n_draws=200, seed=4))
    yield ex
    assert ex.errors == []


def test_png_encoder_is_lossless_and_valid(explorer):
    canvas = explorer._fig.canvas
    png = canvas_png(canvas)
    image = Image.open(io.BytesIO(png))
    image.load()  # decodes every chunk: raises on a bad CRC or zlib stream
    assert image.mode == "RGBA" and image.size == canvas.get_width_height()
    np.testing.assert_array_equal(np.asarray(image), np.asarray(canvas.buffer_rgba()))


# activity (GBq), cycles: scales up, down, and back to ones already drawn (cache hits)
MOVES = [(7.4, 6), (15.0, 10), (2.0, 1), (7.4, 6), (15.0, 10), (4.0, 3)]


def test_blitted_redraw_equals_a_full_draw_at_every_scale(explorer):
    plot = explorer._bed_plot
    seen = set()
    for activity, cycles in MOVES:
        explorer.set(activity_gbq=activity, n_cycles=cycles)
        draws_before = plot.n_scale_draws
        blitted = _pixels(explorer.plot.value)
        full = _pixels(figure_png(explorer._fig))  # a full draw of every artist, z-ordered
        assert blitted.shape == full.shape
        np.testing.assert_array_equal(blitted, full)
        # a scale layer is drawn once per (axes, scale); scales seen before are restored
        new = {(i, s) for i, s in enumerate(plot._scale)} - seen
        seen |= new
        explorer.set(activity_gbq=activity, n_cycles=cycles)  # same scale: no new layer
        assert plot.n_scale_draws == draws_before
    assert plot.n_scale_draws == len(seen) > 2


def test_blitted_redraw_with_organs_only_and_a_bounded_cache():
    inputs = ScenarioInputs.example(n_draws=100, seed=5, n_lesions=0)
    ex = ScenarioExplorer(inputs)
    plot = ex._bed_plot
    plot.MAX_CACHED_SCALES = 2
    # organ scales (Gy): 120 at 7.4 GBq x 6, 60 (the 40 Gy limit line) at 1 GBq x 1, 500 at
    # 15 GBq x 10; the cache keeps two, so returning to 120 draws it again
    for activity, cycles in ((1.0, 1), (15.0, 10), (7.4, 6)):
        ex.set(activity_gbq=activity, n_cycles=cycles)
        np.testing.assert_array_equal(_pixels(ex.plot.value), _pixels(figure_png(ex._fig)))
    assert not plot.axes[1].get_visible()
    assert plot._scale[0] == 120.0 and plot.n_scale_draws == 4
    assert len([k for k in plot._layers if k[0] == 0]) <= 2
    assert ex.errors == []
