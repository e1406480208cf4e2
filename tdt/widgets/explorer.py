"""``ScenarioExplorer``: a live ipywidgets what-if tool for the next treatment choices.

Controls: activity per cycle, number of cycles, interval, ligand amount (live only with a
ligand-sensitivity grid; otherwise disabled and labelled), kidney risk factors (BED limit 28 vs
40 Gy), radiobiological parameters. Outputs: dose and BED per organ and lesion with 90 % credible
intervals, probability of exceeding each limit, TCP and NTCP, cumulative BED over cycles, and a
patient-facing "explain" tab.

Every callback runs inside ``try/except``: an exception is shown in the widget's error area and
appended to :attr:`ScenarioExplorer.errors` (tests assert it stays empty), never only logged.
Sliders use ``continuous_update=False`` (one update per release, keyboard step or typed value)
and updates are debounced on the kernel loop (:class:`~tdt.widgets.debounce.Debouncer`).
"""

from __future__ import annotations

import html
import math
import re
import time
import traceback

import ipywidgets as w
import numpy as np

from tdt.errors import InputError
from tdt.units import HOURS_PER_DAY, gbq_to_mbq
from tdt.widgets.debounce import Debouncer
from tdt.widgets.explain import explain_html, plain_name, plot_explain
from tdt.widgets.inputs import ScenarioInputs
from tdt.widgets.scenario import MAX_CYCLES, Outcomes, Scenario, ScenarioModel

_STYLE = {"description_width": "190px"}
_LAYOUT = w.Layout(width="460px")
_PLOT_DPI = 72


def _coerce_inputs(source) -> ScenarioInputs:
    if isinstance(source, ScenarioInputs):
        return source
    if hasattr(source, "response") and hasattr(source, "record"):  # a tdt.twin.Twin
        return ScenarioInputs.from_twin(source)
    if hasattr(source, "dose_per_mbq") and hasattr(source, "bed_quadratic"):  # twin.DoseDraws
        from tdt.widgets.adapters import inputs_from_dose_draws

        return inputs_from_dose_draws(source)
    if hasattr(source, "dose_draws") or hasattr(source, "idata"):  # a Posterior
        return ScenarioInputs.from_posterior(source)
    raise InputError(
        f"posterior_or_twin: {type(source).__name__}; expected ScenarioInputs, a "
        "tdt.inference.Posterior, a tdt.twin.Twin or tdt.twin.DoseDraws"
    )


def _fmt(value: float, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _pct(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    if 0 < p < 0.005:
        return "&lt;1 %"
    return f"{100 * p:.0f} %"


class ScenarioExplorer:
    """What-if explorer over posterior draws (see module docstring).

    Parameters
    ----------
    posterior_or_twin: :class:`ScenarioInputs`, a ``tdt.inference.Posterior`` or a
        ``tdt.twin.Twin``.
    scenario: initial :class:`Scenario` (default 7.4 GBq × 6 cycles every 6 weeks).
    bed_limits, dose_limits: ``{region: Gy}`` overrides of the default organ limits.
    debounce_s: delay after the last change before recomputing (inside a running kernel loop).
    max_draws: use at most this many draws (a seeded subsample) to keep updates fast.

    Display it as the last expression of a cell (or ``display(explorer)``). Attributes useful in
    code and tests: ``controls`` (name → widget), ``outcomes`` (:class:`Outcomes`), ``errors``
    (list of error strings shown), ``last_update_s`` and ``n_updates``.
    """

    def __init__(self, posterior_or_twin, scenario: Scenario | None = None, *, bed_limits=None,
                 dose_limits=None, debounce_s: float = 0.1, max_draws: int | None = 4000,
                 seed: int = 0):
        self.errors: list[str] = []
        self.outcomes: Outcomes | None = None
        self.n_updates = 0
        self.last_update_s = float("nan")
        self.update_times_s: list[float] = []
        inputs = _coerce_inputs(posterior_or_twin)
        if max_draws is not None and inputs.n_draws > max_draws:
            inputs = inputs.subsample(max_draws, seed=seed)
        self.inputs = inputs
        self.model = ScenarioModel(inputs, bed_limits=bed_limits, dose_limits=dose_limits)
        if scenario is None and hasattr(posterior_or_twin, "record"):
            # a twin knows the patient's kidney risk factors (BED limit 28 Gy instead of 40 Gy)
            limit = getattr(posterior_or_twin.record, "kidney_bed_limit_gy", 40.0)
            scenario = Scenario(kidney_risk_factors=limit < 40.0)
        self._initial = scenario or Scenario()
        self._initial.validate()
        self._debouncer = Debouncer(self._safe_update, debounce_s)
        self._build()
        self._safe_update()

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, dose_per_mbq_gy, effective_half_life_h, **kwargs) -> ScenarioExplorer:
        """From ``{region: draws}`` dicts (Gy/MBq, h); see :meth:`ScenarioInputs.from_arrays`."""
        input_keys = ("ligand_grid_nmol", "ligand_uptake_scale", "source", "converged")
        input_kwargs = {k: kwargs.pop(k) for k in input_keys if k in kwargs}
        return cls(ScenarioInputs.from_arrays(dose_per_mbq_gy, effective_half_life_h,
                                              **input_kwargs), **kwargs)

    @classmethod
    def from_posterior(cls, posterior, **kwargs) -> ScenarioExplorer:
        """From a ``tdt.inference.Posterior`` of the reduced linear model."""
        return cls(ScenarioInputs.from_posterior(posterior), **kwargs)

    @classmethod
    def from_twin(cls, twin, **kwargs) -> ScenarioExplorer:
        """From a ``tdt.twin.Twin`` (its current posterior; its record's kidney risk factors)."""
        if not (hasattr(twin, "response") and hasattr(twin, "record")):
            raise InputError(f"twin: {type(twin).__name__}; expected a tdt.twin.Twin")
        return cls(twin, **kwargs)

    def _build(self) -> None:
        s = self._initial
        rb_defaults = self._radiobiology_defaults()
        c = {}
        c["activity_gbq"] = w.FloatSlider(
            value=round(s.activity_mbq / 1000.0, 2), min=0.5, max=15.0, step=0.1,
            description="activity per cycle (GBq)", continuous_update=False, readout_format=".1f")
        c["n_cycles"] = w.IntSlider(
            value=s.n_cycles, min=1, max=MAX_CYCLES, continuous_update=False,
            description="further cycles" if self.inputs.has_delivered else "number of cycles")
        c["interval_weeks"] = w.FloatSlider(
            value=round(s.interval_h / HOURS_PER_DAY / 7.0, 1), min=1.0, max=16.0, step=0.5,
            description="interval (weeks)", continuous_update=False, readout_format=".1f")
        if self.inputs.has_ligand_sensitivity:
            grid = self.inputs.ligand_grid_nmol
            value = s.ligand_nmol if s.ligand_nmol is not None else float(np.median(grid))
            c["ligand_nmol"] = w.FloatSlider(
                value=value, min=float(grid[0]), max=float(grid[-1]),
                step=float((grid[-1] - grid[0]) / 100.0), description="ligand (nmol)",
                continuous_update=False)
            ligand_note = "ligand amount: per-draw uptake sensitivity from the nonlinear model"
        else:
            c["ligand_nmol"] = w.FloatSlider(
                value=s.ligand_nmol or 150.0, min=50.0, max=300.0, step=5.0,
                description="ligand (nmol)", continuous_update=False, disabled=True,
                tooltip="The reduced linear model does not depend on the ligand amount.")
            ligand_note = ("ligand amount: <b>not modelled</b> — the reduced linear model is "
                           "independent of it (needs the nonlinear PBPK sensitivity)")
        c["kidney_risk_factors"] = w.Checkbox(
            value=s.kidney_risk_factors, indent=False,
            description="kidney risk factors (hypertension, diabetes…): BED limit 28 Gy, not 40")
        c["kidney_alpha_beta_gy"] = w.BoundedFloatText(
            value=rb_defaults["kidney_alpha_beta_gy"], min=0.5, max=20.0, step=0.1,
            description="kidney α/β (Gy)")
        c["kidney_repair_half_time_h"] = w.BoundedFloatText(
            value=rb_defaults["kidney_repair_half_time_h"], min=0.1, max=24.0, step=0.1,
            description="kidney repair T½ (h)")
        c["tumour_alpha_beta_gy"] = w.BoundedFloatText(
            value=rb_defaults["tumour_alpha_beta_gy"], min=0.5, max=30.0, step=0.5,
            description="tumour α/β (Gy)")
        c["tumour_repair_half_time_h"] = w.BoundedFloatText(
            value=rb_defaults["tumour_repair_half_time_h"], min=0.1, max=24.0, step=0.1,
            description="tumour repair T½ (h)")
        c["tumour_alpha_per_gy"] = w.BoundedFloatText(
            value=s.tumour_alpha_per_gy, min=0.01, max=1.0, step=0.01,
            description="tumour α (1/Gy)")
        c["tumour_alpha_sd_per_gy"] = w.BoundedFloatText(
            value=s.tumour_alpha_sd_per_gy, min=0.0, max=0.5, step=0.01,
            description="tumour α spread, sd (1/Gy)")
        c["tumour_clonogens_log10"] = w.BoundedFloatText(
            value=round(math.log10(s.tumour_clonogens), 2), min=1.0, max=12.0, step=0.5,
            description="tumour clonogens (log10)")
        c["tumour_doubling_time_d"] = w.BoundedFloatText(
            value=s.tumour_doubling_time_d or 0.0, min=0.0, max=1000.0, step=1.0,
            description="tumour T_pot (d; 0 = off)")
        for widget in c.values():
            widget.style = dict(_STYLE) if not isinstance(widget, w.Checkbox) else widget.style
            widget.layout = w.Layout(width="460px")
            widget.observe(self._on_change, names="value")
        self.controls = c

        radiobiology = w.Accordion(children=[w.VBox([
            c["kidney_alpha_beta_gy"], c["kidney_repair_half_time_h"], c["tumour_alpha_beta_gy"],
            c["tumour_repair_half_time_h"], c["tumour_alpha_per_gy"],
            c["tumour_alpha_sd_per_gy"], c["tumour_clonogens_log10"], c["tumour_doubling_time_d"]])])
        radiobiology.set_title(0, "radiobiology")
        radiobiology.selected_index = None
        self.error_area = w.HTML(value="", layout=w.Layout(width="100%"))
        self.status = w.HTML(value="")
        self.table = w.HTML(value="")
        self.notes = w.HTML(value="")
        self.plot = w.Image(format="png", layout=w.Layout(width="640px"))
        self.explain_text = w.HTML(value="", layout=w.Layout(width="420px"))
        self.explain_plot = w.Image(format="png", layout=w.Layout(
            width="240px", height="262px", object_fit="contain"))
        self.tabs = w.Tab(children=[
            w.VBox([self.table, self.plot, self.notes]),
            w.HBox([self.explain_text, self.explain_plot],
                   layout=w.Layout(align_items="flex-start")),
        ])
        self.tabs.set_title(0, "clinician")
        self.tabs.set_title(1, "explain (patient)")
        self.tabs.observe(self._on_tab, names="selected_index")
        header = w.HTML(
            f"<b>Scenario explorer</b> — {self.inputs.n_draws} posterior draws "
            f"({html.escape(self.inputs.source)})"
            + (" — <b style='color:#a00'>SYNTHETIC EXAMPLE, not a patient's posterior</b>"
               if self.inputs.synthetic else ""))
        controls = w.VBox([
            c["activity_gbq"], c["n_cycles"], c["interval_weeks"], c["ligand_nmol"],
            w.HTML(f"<small>{ligand_note}</small>", layout=w.Layout(width="460px")),
            c["kidney_risk_factors"], radiobiology,
        ], layout=w.Layout(width="480px"))
        self.widget = w.VBox(
            [header, self.error_area, w.HBox([controls, self.tabs]), self.status],
            layout=w.Layout(width="100%"))
        self.widget.add_class("tdt-scenario-explorer")
        self._fig, axes = _figure()
        self._axes = axes[0]
        self._explain_fig, explain_axes = _figure(ncols=1, figsize=(3.3, 3.6))
        self._explain_ax = explain_axes[0, 0]
        self._explain_stale = True
        self._artists = None
        self._plot_scale = None
        self._background = None

    def _radiobiology_defaults(self) -> dict[str, float]:
        from tdt.widgets.scenario import resolve_radiobiology

        s = self._initial
        regions = self.inputs.regions
        probe = tuple(regions) + ("kidneys", "lesion_0")
        rb = resolve_radiobiology(probe, s.replace(kidney_alpha_beta_gy=None,
                                                   kidney_repair_half_time_h=None,
                                                   tumour_alpha_beta_gy=None,
                                                   tumour_repair_half_time_h=None))
        k, t = probe.index("kidneys"), len(probe) - 1
        return {
            "kidney_alpha_beta_gy": s.kidney_alpha_beta_gy or float(rb.alpha_beta_gy[k]),
            "kidney_repair_half_time_h": s.kidney_repair_half_time_h
            or float(rb.repair_half_time_h[k]),
            "tumour_alpha_beta_gy": s.tumour_alpha_beta_gy or float(rb.alpha_beta_gy[t]),
            "tumour_repair_half_time_h": s.tumour_repair_half_time_h
            or float(rb.repair_half_time_h[t]),
        }

    # --- display -------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):  # older IPython front ends
        from IPython.display import display

        display(self.widget)

    # --- state ---------------------------------------------------------------------------------

    @property
    def scenario(self) -> Scenario:
        """The :class:`Scenario` the controls describe now."""
        c = self.controls
        t_pot = float(c["tumour_doubling_time_d"].value)
        return Scenario(
            activity_mbq=gbq_to_mbq(float(c["activity_gbq"].value)),
            n_cycles=int(c["n_cycles"].value),
            interval_h=float(c["interval_weeks"].value) * 7.0 * HOURS_PER_DAY,
            ligand_nmol=(float(c["ligand_nmol"].value)
                         if self.inputs.has_ligand_sensitivity else None),
            kidney_risk_factors=bool(c["kidney_risk_factors"].value),
            kidney_alpha_beta_gy=float(c["kidney_alpha_beta_gy"].value),
            kidney_repair_half_time_h=float(c["kidney_repair_half_time_h"].value),
            tumour_alpha_beta_gy=float(c["tumour_alpha_beta_gy"].value),
            tumour_repair_half_time_h=float(c["tumour_repair_half_time_h"].value),
            tumour_alpha_per_gy=float(c["tumour_alpha_per_gy"].value),
            tumour_alpha_sd_per_gy=float(c["tumour_alpha_sd_per_gy"].value),
            tumour_clonogens=10.0 ** float(c["tumour_clonogens_log10"].value),
            tumour_doubling_time_d=t_pot if t_pot > 0 else None,
        )

    def set(self, **values) -> None:
        """Set several controls at once (names of :attr:`controls`) and update once."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise InputError(f"controls: unknown {unknown}; expected any of {sorted(self.controls)}")
        with self._paused():
            for name, value in values.items():
                self.controls[name].value = value
        self._safe_update()

    def flush(self) -> None:
        """Run a pending debounced update now."""
        self._debouncer.flush()

    def displayed(self, region: str, quantity: str) -> str:
        """Text the table shows for ``region`` / ``quantity`` (e.g. 'kidneys', 'bed_total_gy')."""
        pattern = (rf'data-region="{re.escape(region)}" data-quantity="{re.escape(quantity)}">'
                   r"([^<]*)<")
        match = re.search(pattern, self.table.value)
        if match is None:
            raise InputError(f"displayed: no cell for region {region!r}, quantity {quantity!r}")
        return match.group(1)

    # --- callbacks -----------------------------------------------------------------------------

    class _Pause:
        def __init__(self, explorer):
            self.explorer = explorer

        def __enter__(self):
            self.explorer._paused_flag = True

        def __exit__(self, *exc):
            self.explorer._paused_flag = False

    _paused_flag = False

    def _paused(self):
        return ScenarioExplorer._Pause(self)

    def _on_change(self, change) -> None:
        if self._paused_flag:
            return
        try:
            self._debouncer.trigger()
        except Exception as exc:  # noqa: BLE001 — shown in the widget, see module docstring
            self._record_error(exc)

    def _on_tab(self, change) -> None:
        try:
            if change["new"] == 1 and self._explain_stale and self.outcomes is not None:
                self._render_explain(self.outcomes)
        except Exception as exc:  # noqa: BLE001
            self._record_error(exc)

    def _record_error(self, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        self.errors.append(message)
        detail = html.escape("".join(traceback.format_exception(exc))[-2000:])
        self.error_area.value = (
            "<div class='tdt-error' style='color:#a00;border:1px solid #a00;padding:4px'>"
            f"<b>Could not update:</b> {html.escape(message)}"
            f"<details><summary>details</summary><pre>{detail}</pre></details></div>")

    def _safe_update(self) -> None:
        try:
            self.update()
        except Exception as exc:  # noqa: BLE001
            self._record_error(exc)

    def update(self) -> Outcomes:
        """Recompute for the current controls and redraw (raises; callbacks use the safe path)."""
        start = time.perf_counter()
        outcomes = self.model(self.scenario)
        self.outcomes = outcomes
        self.table.value = self._table_html(outcomes)
        self._render_plot(outcomes)
        self._explain_stale = True
        if self.tabs.selected_index == 1:
            self._render_explain(outcomes)
        self.notes.value = self._notes_html(outcomes)
        self.error_area.value = ""
        elapsed = time.perf_counter() - start
        self.last_update_s = elapsed
        self.update_times_s.append(elapsed)
        self.n_updates += 1
        self.status.value = (f"<small>updated in {1000 * elapsed:.0f} ms "
                             f"(update #{self.n_updates})</small>")
        return outcomes

    # --- rendering -----------------------------------------------------------------------------

    def _table_html(self, o: Outcomes) -> str:
        def cell(region, quantity, value, extra=""):
            return (f'<td style="text-align:right"><span class="tdt-value" '
                    f'data-region="{region}" data-quantity="{quantity}">{value}</span>{extra}</td>')

        def interval(q, i):
            return f" <small>[{_fmt(q[0, i])}–{_fmt(q[2, i])}]</small>"

        head = ("<tr><th>region</th><th>dose / cycle (Gy)</th><th>total dose (Gy)</th>"
                "<th>total BED (Gy)</th><th>limit</th><th>P(over limit)</th>"
                "<th>NTCP / TCP</th></tr>")
        rows = []
        for i, region in enumerate(o.regions):
            kind = o.limit_kind[i]
            limit = f"{kind} {o.limit_gy[i]:.0f} Gy" if kind else "–"
            risk = o.tcp[i] if region.startswith("lesion") else o.ntcp[i]
            label = "TCP" if region.startswith("lesion") else "NTCP"
            warn = (' style="background:#fde0dc"'
                    if math.isfinite(o.p_exceed[i]) and o.p_exceed[i] >= 0.05 else "")
            rows.append(
                f"<tr{warn}><td>{html.escape(region)}</td>"
                + cell(region, "dose_per_cycle_gy", _fmt(o.dose_per_cycle_gy[1, i], 2),
                       interval(o.dose_per_cycle_gy, i))
                + cell(region, "dose_total_gy", _fmt(o.dose_total_gy[1, i]),
                       interval(o.dose_total_gy, i))
                + cell(region, "bed_total_gy", _fmt(o.bed_total_gy[1, i]),
                       interval(o.bed_total_gy, i))
                + f"<td style=\"white-space:nowrap\">{limit}</td>"
                + cell(region, "p_exceed", _pct(o.p_exceed[i]))
                + cell(region, "risk", (f"{label} {_pct(risk)}" if math.isfinite(risk) else "–"))
                + "</tr>")
        caption = ("<caption style='caption-side:bottom;text-align:left'><small>median "
                   "[90 % credible interval] over posterior draws; P(over limit) = fraction of "
                   "draws above the limit.</small></caption>")
        return (f"<table class='tdt-outcomes' style='border-collapse:collapse'>{caption}"
                f"{head}{''.join(rows)}</table>")

    def _notes_html(self, o: Outcomes) -> str:
        notes = []
        if self.inputs.converged is False:
            notes.append("<b style='color:#a00'>Posterior FAILED sampler diagnostics — do not "
                         "use these numbers for decisions.</b>")
        if o.overlap_bound > 0.01:
            notes.append(f"Cycles overlap: up to {100 * o.overlap_bound:.0f} % of a cycle's dose "
                         "rate is left at the next administration; the summed-cycle BED "
                         "neglects that interaction.")
        notes.extend(html.escape(n) for n in self.inputs.notes)
        notes.append("BED per cycle: Dale closed form (instant uptake, mono-exponential "
                     "clearance); cycles summed. Kidney limits: Bodei et al. EJNMMI 2008.")
        return "<small>" + "<br>".join(notes) + "</small>"

    def _build_plot_artists(self, o: Outcomes) -> None:
        """Create the lines and bands once; updates only move their data (fast redraws)."""
        from tdt.plotting import COLORS

        organ_ax, lesion_ax = self._axes
        self._artists = {}
        lesion_index = 0
        for i, region in enumerate(o.regions):
            if region.startswith("lesion"):
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
        self._fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.9, wspace=0.25)

    def _render_plot(self, o: Outcomes) -> None:
        """Blitted redraw (matplotlib's documented blitting technique, Agg canvas).

        The axes, ticks, labels and legend are rendered once per y-scale into a background
        image; an update restores it and draws only the bands and lines, then encodes the PNG.
        Text layout dominates a full Agg draw (>100 ms on a busy 2-core CPU); this is ~10×
        cheaper. The y-scale snaps to a ladder of round values so it rarely changes.
        """
        if self._artists is None:
            self._build_plot_artists(o)
        n = o.scenario.n_cycles
        cycles = np.arange(1, MAX_CYCLES + 1, dtype=float)
        top = {id(ax): 1.0 for ax in self._axes}
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
        # hysteresis: keep the scale while the data fill 35–100 % of it, else re-snap with headroom
        previous = self._plot_scale or (None,) * len(self._axes)
        scale = tuple(
            old if old is not None and 0.35 * old <= top[id(ax)] <= old
            else _nice_ceiling(1.3 * top[id(ax)])
            for ax, old in zip(self._axes, previous, strict=True))
        canvas = self._fig.canvas
        if scale != self._plot_scale:
            for ax, upper in zip(self._axes, scale, strict=True):
                ax.set_ylim(0.0, upper)
            canvas.draw()  # animated artists are skipped: this is the background
            self._background = canvas.copy_from_bbox(self._fig.bbox)
            self._plot_scale = scale
        else:
            canvas.restore_region(self._background)
        for ax, band, line, tail, limit in self._artists.values():
            for artist in (band, tail, line, limit):
                if artist.get_visible():
                    ax.draw_artist(artist)
        self.plot.value = _canvas_png(canvas)

    def _render_explain(self, o: Outcomes) -> None:
        from tdt.plotting import figure_png

        text = explain_html(o, synthetic=self.inputs.synthetic)
        self._explain_ax.clear()
        plot_explain(o, self._explain_ax)
        # picture first: the front end then never shows the new words beside an old picture
        self.explain_plot.value = figure_png(self._explain_fig, dpi=_PLOT_DPI)
        self.explain_text.value = text
        self._explain_stale = False

    def explain(self) -> str:
        """The plain-words explanation of the current prediction (HTML)."""
        if self.outcomes is None:
            raise InputError("explain: no prediction yet (the last update failed)")
        self._render_explain(self.outcomes)
        return self.explain_text.value

    def plain_summary(self, region: str = "kidneys") -> str:
        """One sentence for ``region`` (used in notebooks and logs; no patient identifiers)."""
        o = self.outcomes
        i = o.index(region)
        return (f"{plain_name(region)}: BED {o.bed_total_gy[1, i]:.1f} Gy "
                f"[{o.bed_total_gy[0, i]:.1f}–{o.bed_total_gy[2, i]:.1f}], "
                f"P(over limit) {_pct(o.p_exceed[i]).replace('&lt;', '<')}")


def _figure(ncols: int = 2, figsize=(9.0, 3.2)):
    # fixed layout (no constrained layout): a layout engine costs more than the whole redraw
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=_PLOT_DPI)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, squeeze=False)


#: y-axis upper limits the plot snaps to (Gy)
_LADDER = np.array([1, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300,
                    400, 500, 600, 800, 1000, 1500, 2000, 3000, 5000, 10000], dtype=float)


def _nice_ceiling(value: float) -> float:
    index = int(np.searchsorted(_LADDER, value))
    return float(_LADDER[index]) if index < _LADDER.size else float(value)


def _canvas_png(canvas) -> bytes:
    """PNG bytes of an Agg canvas's current buffer (fast zlib level: speed over size)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0,
                     1).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()
