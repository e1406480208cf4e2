"""The explorer's figures: cumulative BED after each cycle (blitted redraws) and PNG encoding.

matplotlib is used through its object API on an Agg canvas (no pyplot state): the explorer owns
its figures and redraws them itself, many times a second while a slider moves.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from tdt.plotting import COLORS
from tdt.widgets._inputs import is_lesion
from tdt.widgets._scenario import MAX_CYCLES, Outcomes

#: resolution of the explorer's figures (dots per inch)
PLOT_DPI = 72

#: y-axis upper limits the plot snaps to (Gy)
_LADDER = np.array([1, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300,
                    400, 500, 600, 800, 1000, 1500, 2000, 3000, 5000, 10000], dtype=float)


def new_figure(ncols: int = 2, figsize=(9.0, 3.2)):
    """A figure on its own Agg canvas and a (1, ncols) array of axes."""
    # fixed layout (no constrained layout): a layout engine costs more than the whole redraw
    fig = Figure(figsize=figsize, dpi=PLOT_DPI)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, squeeze=False)


def nice_ceiling(value: float) -> float:
    """The smallest value of the ladder of round axis limits that is >= ``value`` (Gy)."""
    index = int(np.searchsorted(_LADDER, value))
    return float(_LADDER[index]) if index < _LADDER.size else float(value)


def canvas_png(canvas) -> bytes:
    """PNG bytes of an Agg canvas's current buffer (fast zlib level: speed over size)."""
    buffer = io.BytesIO()
    Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0,
                     1).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


class CumulativeBedPlot:
    """Cumulative BED after each cycle (median line, 90 % band, BED limit), organs | lesions."""

    def __init__(self):
        self.figure, axes = new_figure()
        self.axes = axes[0]
        self._artists = None
        self._scale = None
        self._background = None

    def _build_artists(self, o: Outcomes) -> None:
        """Create the lines and bands once; updates only move their data (fast redraws)."""
        organ_ax, lesion_ax = self.axes
        self._artists = {}
        lesion_index = 0
        for i, region in enumerate(o.regions):
            if is_lesion(region):
                ax, color = lesion_ax, COLORS[(lesion_index + 3) % len(COLORS)]
                lesion_index += 1
            else:
                ax, color = organ_ax, COLORS[i % len(COLORS)]
            band = ax.fill_between([0, 1], [0, 0], [0, 0], color=color, alpha=0.25, linewidth=0)
            (line,) = ax.plot([], [], color=color, lw=2, marker="o", ms=4, label=region)
            (tail,) = ax.plot([], [], color=color, lw=1, ls=":")
            limit = ax.axhline(0.0, color=color, ls="--", lw=1, visible=False)
            for artist in (band, line, tail, limit):
                artist.set_animated(True)
            self._artists[region] = (ax, band, line, tail, limit)
        for ax, title in ((organ_ax, "organs"), (lesion_ax, "lesions")):
            ax.set_title(f"cumulative BED after each cycle — {title}", fontsize="small")
            ax.set_xlabel("cycle")
            ax.set_ylabel("BED (Gy)")
            ax.set_xticks(np.arange(1, MAX_CYCLES + 1))
            ax.set_xlim(0.7, MAX_CYCLES + 0.3)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize="x-small", loc="upper left")
            else:
                ax.set_visible(False)
        self.figure.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.9, wspace=0.25)

    def _move_artists(self, o: Outcomes) -> dict[int, float]:
        """Put the outcomes' data into the artists; return the data's top per axes (Gy)."""
        n = o.scenario.n_cycles
        cycles = np.arange(1, MAX_CYCLES + 1, dtype=float)
        top = {id(ax): 1.0 for ax in self.axes}
        for i, region in enumerate(o.regions):
            ax, band, line, tail, limit = self._artists[region]
            q = o.cumulative_bed_gy[:, :, i]
            x = cycles[:n]
            band.set_verts([np.column_stack([np.r_[x, x[::-1]], np.r_[q[0, :n], q[2, :n][::-1]]])])
            line.set_data(x, q[1, :n])
            tail.set_data(cycles[n - 1:], q[1, n - 1:])
            peak = float(np.max(q[2, :n]))
            if o.limit_kind[i] == "BED":
                limit.set_ydata([o.limit_gy[i], o.limit_gy[i]])
                limit.set_visible(True)
                peak = max(peak, float(o.limit_gy[i]))
            else:
                limit.set_visible(False)
            top[id(ax)] = max(top[id(ax)], peak)
        return top

    def render(self, o: Outcomes) -> bytes:
        """Blitted redraw (matplotlib's documented blitting technique, Agg canvas); PNG bytes.

        The axes, ticks, labels and legend are rendered once per y-scale into a background
        image; an update restores it and draws only the bands and lines, then encodes the PNG.
        Text layout dominates a full Agg draw (>100 ms on a busy 2-core CPU); this is ~10×
        cheaper. The y-scale snaps to a ladder of round values so it rarely changes.
        """
        if self._artists is None:
            self._build_artists(o)
        top = self._move_artists(o)
        # hysteresis: keep the scale while the data fill 35–100 % of it, else re-snap with headroom
        previous = self._scale or (None,) * len(self.axes)
        scale = tuple(
            old if old is not None and 0.35 * old <= top[id(ax)] <= old
            else nice_ceiling(1.3 * top[id(ax)])
            for ax, old in zip(self.axes, previous, strict=True))
        canvas = self.figure.canvas
        if scale != self._scale:
            for ax, upper in zip(self.axes, scale, strict=True):
                ax.set_ylim(0.0, upper)
            canvas.draw()  # animated artists are skipped: this is the background
            self._background = canvas.copy_from_bbox(self.figure.bbox)
            self._scale = scale
        else:
            canvas.restore_region(self._background)
        for ax, band, line, tail, limit in self._artists.values():
            for artist in (band, tail, line, limit):
                if artist.get_visible():
                    ax.draw_artist(artist)
        return canvas_png(canvas)
