"""``ScenarioExplorer``: a live ipywidgets what-if tool for the next treatment choices.

Controls: activity per cycle, number of cycles, interval, ligand amount (live only with a
ligand-sensitivity grid; otherwise disabled and labelled), kidney risk factors (BED limit 28 vs
40 Gy), radiobiological parameters. Outputs: dose and BED per organ and lesion with 90 % credible
intervals, probability of exceeding each limit, TCP and NTCP, cumulative BED over cycles, and a
patient-facing "explain" tab.

Every callback runs inside ``try/except``: an exception is shown in the widget's error area and
appended to :attr:`ScenarioExplorer.errors` (tests assert it stays empty), never only logged.
Sliders use ``continuous_update=False`` (one update per release, keyboard step or typed value)
and updates are debounced on the kernel loop (:class:`~tdt.widgets._debounce.Debouncer`).

This module holds the widget's state and callbacks; the controls (``_explorer_controls``), the
table and notes (``_explorer_format``) and the figures (``_explorer_plot``) live beside it.
"""

from __future__ import annotations

import contextlib
import html
import re
import time
import traceback

import ipywidgets as w
from IPython.display import display

from tdt.errors import InputError
from tdt.plotting import figure_png
from tdt.widgets._adapters import inputs_from_dose_draws, inputs_from_posterior, inputs_from_twin
from tdt.widgets._adapters_pbpk import inputs_from_pbpk_twin
from tdt.widgets._debounce import Debouncer
from tdt.widgets._explain import explain_html, plain_name, plot_explain
from tdt.widgets._explorer_controls import (
    CONTROL_WIDTH,
    RADIOBIOLOGY_CONTROLS,
    build_controls,
    scenario_from_controls,
)
from tdt.widgets._explorer_format import notes_html, outcomes_table_html, pct
from tdt.widgets._explorer_plot import PLOT_DPI, CumulativeBedPlot, new_figure
from tdt.widgets._inputs import ScenarioInputs
from tdt.widgets._scenario import KIDNEY_BED_LIMIT_GY, Outcomes, Scenario, ScenarioModel


def _coerce_inputs(source) -> ScenarioInputs:
    if isinstance(source, ScenarioInputs):
        return source
    if getattr(source, "is_pbpk", False):  # a receptor-PBPK tdt.twin.Twin: the ligand emulator
        return inputs_from_pbpk_twin(source)
    if hasattr(source, "response") and hasattr(source, "record"):  # a tdt.twin.Twin
        return inputs_from_twin(source)
    if hasattr(source, "dose_per_mbq") and hasattr(source, "bed_quadratic"):  # twin.DoseDraws
        return inputs_from_dose_draws(source)
    if hasattr(source, "dose_draws") or hasattr(source, "idata"):  # a Posterior
        return inputs_from_posterior(source)
    raise InputError(
        f"posterior_or_twin: {type(source).__name__}; expected ScenarioInputs, a "
        "tdt.inference.Posterior, a tdt.twin.Twin or tdt.twin.DoseDraws"
    )


class ScenarioExplorer:
    """What-if explorer over posterior draws (see module docstring).

    Parameters
    ----------
    posterior_or_twin: :class:`ScenarioInputs`, a ``tdt.inference.Posterior`` or a
        ``tdt.twin.Twin`` (a PBPK twin gets the ligand emulator,
        :func:`tdt.widgets.inputs_from_pbpk_twin`: activity and ligand-amount sliders).
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
            limit = getattr(posterior_or_twin.record, "kidney_bed_limit_gy", KIDNEY_BED_LIMIT_GY)
            scenario = Scenario(kidney_risk_factors=limit < KIDNEY_BED_LIMIT_GY)
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
        return cls(inputs_from_posterior(posterior), **kwargs)

    @classmethod
    def from_twin(cls, twin, **kwargs) -> ScenarioExplorer:
        """From a ``tdt.twin.Twin`` (its current posterior; its record's kidney risk factors)."""
        if not (hasattr(twin, "response") and hasattr(twin, "record")):
            raise InputError(f"twin: {type(twin).__name__}; expected a tdt.twin.Twin")
        return cls(twin, **kwargs)

    def _build(self) -> None:
        self.controls, ligand_note = build_controls(self._initial, self.inputs)
        for widget in self.controls.values():
            widget.observe(self._on_change, names="value")
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
        self.widget = w.VBox(
            [self._header(), self.error_area,
             w.HBox([self._control_panel(ligand_note), self.tabs]), self.status],
            layout=w.Layout(width="100%"))
        self.widget.add_class("tdt-scenario-explorer")
        self._bed_plot = CumulativeBedPlot()
        self._explain_fig, explain_axes = new_figure(ncols=1, figsize=(3.3, 3.6))
        self._explain_ax = explain_axes[0, 0]
        self._explain_stale = True

    def _header(self) -> w.HTML:
        return w.HTML(
            f"<b>Scenario explorer</b> — {self.inputs.n_draws} posterior draws "
            f"({html.escape(self.inputs.source)})"
            + (" — <b style='color:#a00'>SYNTHETIC EXAMPLE, not a patient's posterior</b>"
               if self.inputs.synthetic else ""))

    def _control_panel(self, ligand_note: str) -> w.VBox:
        c = self.controls
        radiobiology = w.Accordion(children=[w.VBox([c[n] for n in RADIOBIOLOGY_CONTROLS])])
        radiobiology.set_title(0, "radiobiology")
        radiobiology.selected_index = None
        return w.VBox([
            c["activity_gbq"], c["n_cycles"], c["interval_weeks"], c["ligand_nmol"],
            w.HTML(f"<small>{ligand_note}</small>", layout=w.Layout(width=CONTROL_WIDTH)),
            c["kidney_risk_factors"], radiobiology,
        ], layout=w.Layout(width="480px"))

    @property
    def _fig(self):
        """The cumulative-BED figure (matplotlib ``Figure`` on an Agg canvas)."""
        return self._bed_plot.figure

    # --- display -------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):  # older IPython front ends
        display(self.widget)

    # --- state ---------------------------------------------------------------------------------

    @property
    def scenario(self) -> Scenario:
        """The :class:`Scenario` the controls describe now."""
        return scenario_from_controls(self.controls, self.inputs.has_ligand_sensitivity)

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

    _paused_flag = False

    @contextlib.contextmanager
    def _paused(self):
        """Controls changed inside this block trigger no update (``set`` updates once after)."""
        self._paused_flag = True
        try:
            yield
        finally:
            self._paused_flag = False

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
        self.table.value = outcomes_table_html(outcomes)
        self._render_plot(outcomes)
        self._explain_stale = True
        if self.tabs.selected_index == 1:
            self._render_explain(outcomes)
        self.notes.value = notes_html(outcomes, self.inputs)
        self.error_area.value = ""
        elapsed = time.perf_counter() - start
        self.last_update_s = elapsed
        self.update_times_s.append(elapsed)
        self.n_updates += 1
        self.status.value = (f"<small>updated in {1000 * elapsed:.0f} ms "
                             f"(update #{self.n_updates})</small>")
        return outcomes

    # --- rendering -----------------------------------------------------------------------------

    def _render_plot(self, o: Outcomes) -> None:
        """Redraw the cumulative-BED plot (blitted, see :class:`CumulativeBedPlot`)."""
        self.plot.value = self._bed_plot.render(o)

    def _render_explain(self, o: Outcomes) -> None:
        text = explain_html(o, synthetic=self.inputs.synthetic)
        self._explain_ax.clear()
        plot_explain(o, self._explain_ax)
        # picture first: the front end then never shows the new words beside an old picture
        self.explain_plot.value = figure_png(self._explain_fig, dpi=PLOT_DPI)
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
                f"P(over limit) {pct(o.p_exceed[i]).replace('&lt;', '<')}")
