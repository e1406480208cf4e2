"""The explorer's figures: cumulative BED after each cycle (blitted redraws) and PNG encoding.

matplotlib is used through its object API on an Agg canvas (no pyplot state): the explorer owns
its figures and redraws them itself, many times a second while a slider moves.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

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


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data (PNG spec, W3C 2003, §5.3)."""
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def canvas_png(canvas) -> bytes:
    """PNG bytes of an Agg canvas's current RGBA buffer, lossless (8-bit RGBA, colour type 6).

    Written directly (PNG spec, W3C Recommendation 2003: signature, IHDR, one IDAT, IEND) with
    filter type 0 (None) on every row and zlib level 1: Pillow's encoder chooses a filter per
    row, which costs ~5× more on this ~650×230 figure than the whole deflate, for a ~10 %
    smaller file. Speed over size: it is re-sent at every update.
    """
    width, height = canvas.get_width_height()
    pixels = np.asarray(canvas.buffer_rgba()).reshape(height, 4 * width)
    rows = np.zeros((height, 4 * width + 1), dtype=np.uint8)  # column 0: filter type 0
    rows[:, 1:] = pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)) + _png_chunk(b"IEND", b""))


#: z-order of the explorer's data (bands; lines and limits one above): over the legend (5), so a
#: plain full draw stacks the artists as the blitted redraw does
_DATA_ZORDER = 6


def _scale_layer(ax) -> list:
    """The artists of ``ax`` that depend on its y-scale or lie over its y grid, in draw order:
    the y axis (ticks, labels, grid), the spines and the legend."""
    artists = [ax.yaxis, *ax.spines.values()]
    if ax.get_legend() is not None:
        artists.append(ax.get_legend())
    return sorted(artists, key=lambda a: a.get_zorder())


class CumulativeBedPlot:
    """Cumulative BED after each cycle (median line, 90 % band, BED limit), organs | lesions.

    Three layers, so that an update redraws only what changed (:meth:`render`): the *static*
    layer (figure, axes faces, x axes, titles), drawn once; per axes and y-scale the *scale*
    layer (y axis with its grid, spines, legend), drawn once per scale and cached; the *data*
    (bands, lines, limits), drawn at every update. The data lie above every other artist
    (z-order 6–7, over the legend's 5), so a plain full draw of the figure (``savefig``) gives
    the blitted picture (tested pixel by pixel).
    """

    #: most cached scale layers per axes (each a vertical strip of the figure, ~0.3 MB)
    MAX_CACHED_SCALES = 16

    def __init__(self):
        self.figure, axes = new_figure()
        self.axes = axes[0]
        self._artists = None
        self._data = None
        self._scale = None
        self._strips = None  # per visible axes: (axes, its strip's bbox, its static pixels)
        self._layers: dict[tuple[int, float], object] = {}
        #: scale layers drawn so far (cache misses; benchmarks and tests read it)
        self.n_scale_draws = 0

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
            band = ax.fill_between([0, 1], [0, 0], [0, 0], color=color, alpha=0.25, linewidth=0,
                                   zorder=_DATA_ZORDER)
            (line,) = ax.plot([], [], color=color, lw=2, marker="o", ms=4, label=region,
                              zorder=_DATA_ZORDER + 1)
            (tail,) = ax.plot([], [], color=color, lw=1, ls=":", zorder=_DATA_ZORDER + 1)
            limit = ax.axhline(0.0, color=color, ls="--", lw=1, visible=False,
                               zorder=_DATA_ZORDER + 1)
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
            for artist in _scale_layer(ax):
                artist.set_animated(True)  # not in the static layer
        self.figure.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.9, wspace=0.25)
        # each axes' data in a full draw's order: z-order, then creation order (stable sort)
        self._data = {id(ax): sorted((a for artists in self._artists.values()
                                      if artists[0] is ax for a in artists[1:]),
                                     key=lambda a: a.get_zorder())
                      for ax in self.axes}

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

    def _draw_static(self) -> None:
        """Draw the static layer (the animated scale layers and data are skipped) and cut the
        figure into one vertical strip per visible axes, split just right of each axes' right
        spine: a strip holds everything its axes' scale layer draws (y labels lie left)."""
        canvas = self.figure.canvas
        canvas.draw()
        width, height = canvas.get_width_height()
        visible = sorted((ax for ax in self.axes if ax.get_visible()), key=lambda a: a.bbox.x0)
        edges = [0] + [int(np.ceil(ax.bbox.x1)) + 2 for ax in visible[:-1]] + [width]
        self._strips = []
        for ax, x0, x1 in zip(visible, edges[:-1], edges[1:], strict=True):
            bbox = Bbox.from_extents(x0, 0, x1, height)
            self._strips.append((ax, bbox, canvas.copy_from_bbox(bbox)))

    def _restore_scale_layer(self, index: int, ax, bbox, static, upper: float) -> None:
        """Put the strip of ``ax`` at y-scale ``upper`` on the canvas (cached after its first
        draw: the static strip plus the y axis, spines and legend at that scale)."""
        canvas = self.figure.canvas
        key = (index, upper)
        layer = self._layers.get(key)
        if layer is None:
            canvas.restore_region(static)
            for artist in _scale_layer(ax):
                ax.draw_artist(artist)
            layer = canvas.copy_from_bbox(bbox)
            mine = [k for k in self._layers if k[0] == index]
            if len(mine) >= self.MAX_CACHED_SCALES:
                del self._layers[mine[0]]  # oldest first (dicts keep insertion order)
            self._layers[key] = layer
            self.n_scale_draws += 1
        else:
            canvas.restore_region(layer)

    def render(self, o: Outcomes) -> bytes:
        """Blitted redraw (matplotlib's documented blitting technique, Agg canvas); PNG bytes.

        Text layout dominates a full Agg draw (>100 ms on a busy 2-core CPU). The static layer
        is drawn once; the y axis, spines and legend of each axes once per y-scale (cached, see
        the class docstring); an update restores those pixels and draws only the bands and
        lines, then encodes the PNG. The y-scale snaps to a ladder of round values (with
        hysteresis) so it rarely changes, and a scale seen before costs nothing more.
        """
        if self._artists is None:
            self._build_artists(o)
        top = self._move_artists(o)
        # hysteresis: keep the scale while the data fill 35–100 % of it, else re-snap with headroom
        previous = self._scale or (None,) * len(self.axes)
        self._scale = tuple(
            old if old is not None and 0.35 * old <= top[id(ax)] <= old
            else nice_ceiling(1.3 * top[id(ax)])
            for ax, old in zip(self.axes, previous, strict=True))
        for ax, upper in zip(self.axes, self._scale, strict=True):
            if ax.get_ylim() != (0.0, upper):
                ax.set_ylim(0.0, upper)
        if self._strips is None:
            self._draw_static()
        canvas = self.figure.canvas
        for ax, bbox, static in self._strips:
            index = list(self.axes).index(ax)
            self._restore_scale_layer(index, ax, bbox, static, self._scale[index])
            for artist in self._data[id(ax)]:
                if artist.get_visible():
                    ax.draw_artist(artist)
        return canvas_png(canvas)
