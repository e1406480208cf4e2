"""Declarative description of a receptor-binding PBPK model and its JAX right-hand side.

A model is a list of :class:`Tissue` records around a well-mixed plasma compartment. Each tissue
exchanges ligand with plasma by its plasma flow (flow-limited, well-stirred interstitium) and,
when it expresses the target receptor, binds, internalises and releases it::

    plasma P ──Q_o (C_p − C_int,o)──► free interstitial F_o ──k_on C_int R_free / k_off──► bound B_o
                                           ▲                                               │ k_int
                                           └────────────── k_rel ──── internalised I_o ◄───┘
    plasma ──fu · GFR · C_p──► (1 − f_reabs) to urine U, f_reabs reabsorbed into I_kidneys

C_p = P / V_plasma, C_int,o = F_o / (f_int,o V_o) (nmol/mL); R_free,o = R_o V_o / 1000 − B_o (nmol,
receptor density R_o in nmol/L of tissue; internalised receptors are re-expressed, so the
receptor pool is constant — as in the SSTR PBPK of Kletting et al. (J Nucl Med 2016;57:503,
90Y-DOTATATE peptide amount) and the PSMA PBPK of Begum, Kletting, Glatting et al.). The
structure follows that Ulm PBPK lineage (see docs/pbpk.md); the vascular spaces are merged into plasma (a
reduction: vascular transit times are seconds, far below the hours resolved by imaging).

Hot and cold ligand compete for the same receptors: the model carries the *total* peptide amount
(nmol; labelled + unlabelled, conserved — the 177Hf-peptide left by a decay still binds) in every
sub-compartment, which sets R_free, and the *hot* activity (MBq) in every sub-compartment, which
moves with the same fluxes (linear in the hot amounts given R_free) and decays with λ. Because of
R_free, a larger ligand amount saturates receptors and lowers uptake per activity (sink effect).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from tdt.units import ml_to_litre

#: Parameters of every tissue (suffix ``_<tissue>``) and their units.
TISSUE_PARAMETERS = {
    "V": "mL",  # tissue volume
    "fint": "1",  # interstitial volume fraction
    "Q": "mL/h",  # plasma flow through the tissue
}
#: Extra parameters of receptor-expressing tissues.
RECEPTOR_PARAMETERS = {
    "R": "nmol/L",  # receptor density per litre of tissue
    "kint": "1/h",  # internalisation of the ligand-receptor complex
    "krel": "1/h",  # release of internalised ligand back to the interstitium
}
#: Whole-body parameters.
GLOBAL_PARAMETERS = {
    "V_plasma": "mL",
    "GFR": "mL/h",  # glomerular filtration rate (plasma water filtered per hour)
    "fu_plasma": "1",  # unbound fraction in plasma: only unbound ligand is filtered
    "f_reabs": "1",  # fraction of filtered ligand reabsorbed into kidney cells
    "kon": "mL/(nmol h)",  # association rate constant
    "koff": "1/h",  # dissociation rate constant
}


@dataclass(frozen=True)
class Tissue:
    """A tissue compartment: name and whether it expresses the target receptor."""

    name: str
    receptors: bool


@dataclass(frozen=True)
class Layout:
    """Index map of the flat state vector.

    ``[total peptide (nmol) × n_sub | hot activity (MBq) × n_sub | line s, rate r (MBq, MBq/h) |
    ∫ hot per reported compartment (MBq·h) × n_rep | ∫ s]``; sub-compartments: plasma, per tissue
    F (and B, I), urine.
    """

    tissues: tuple[Tissue, ...]

    @property
    def sub_names(self) -> tuple[str, ...]:
        names = ["plasma"]
        for t in self.tissues:
            names += [f"{t.name}:free"] + ([f"{t.name}:bound", f"{t.name}:internalised"]
                                          if t.receptors else [])
        return (*names, "urine")

    @property
    def n_sub(self) -> int:
        return len(self.sub_names)

    @property
    def reported(self) -> tuple[str, ...]:
        return ("plasma", *(t.name for t in self.tissues), "urine")

    def sub_index(self, name: str) -> int:
        return self.sub_names.index(name)

    @property
    def line_index(self) -> int:
        return 2 * self.n_sub

    @property
    def rate_index(self) -> int:
        return 2 * self.n_sub + 1

    @property
    def integral_start(self) -> int:
        return 2 * self.n_sub + 2

    @property
    def n_state(self) -> int:
        return 2 * self.n_sub + 2 + len(self.reported) + 1

    def report_matrix(self):
        """(n_rep, n_sub) 0/1 matrix summing sub-compartments into reported compartments."""
        m = [[0.0] * self.n_sub for _ in self.reported]
        for j, sub in enumerate(self.sub_names):
            m[self.reported.index(sub.split(":")[0])][j] = 1.0
        return jnp.asarray(m)


def parameter_names(tissues: tuple[Tissue, ...]) -> tuple[str, ...]:
    """All parameter names of a description, in a fixed order."""
    names = list(GLOBAL_PARAMETERS)
    for t in tissues:
        names += [f"{p}_{t.name}" for p in TISSUE_PARAMETERS]
        if t.receptors:
            names += [f"{p}_{t.name}" for p in RECEPTOR_PARAMETERS]
    return tuple(names)


def fluxes(layout: Layout, p: dict, total, amount, xp=jnp):
    """d(amount)/dt from transport and binding (no decay, no input), for total or hot species.

    ``total`` (nmol, n_sub) sets the free receptors; ``amount`` (n_sub) is the species moved
    (``total`` itself, or the hot activity in MBq, linear given ``total``). ``xp=numpy`` gives a
    plain NumPy evaluation (used by the SciPy baseline of the benchmarks).
    """
    d = [None] * layout.n_sub
    ip = 0
    c_p = amount[ip] / p["V_plasma"]
    # Glomerular filtration clears only the ligand not bound to plasma proteins: renal filtration
    # clearance fu · GFR (rapid plasma-protein binding equilibrium; bound ligand is not filtered).
    filtered = p["fu_plasma"] * p["GFR"] * c_p
    d_plasma = -filtered
    for t in layout.tissues:
        o = t.name
        i_f = layout.sub_index(f"{o}:free")
        v_int = p[f"fint_{o}"] * p[f"V_{o}"]
        c_int = amount[i_f] / v_int
        exchange = p[f"Q_{o}"] * (c_p - c_int)
        d_plasma = d_plasma - exchange
        d_free = exchange
        if t.receptors:
            i_b, i_i = layout.sub_index(f"{o}:bound"), layout.sub_index(f"{o}:internalised")
            receptors_nmol = p[f"R_{o}"] * ml_to_litre(p[f"V_{o}"])  # nmol/L × L
            free_receptors = xp.maximum(receptors_nmol - total[i_b], 0.0)
            binding = p["kon"] * c_int * free_receptors - p["koff"] * amount[i_b]
            internalisation = p[f"kint_{o}"] * amount[i_b]
            release = p[f"krel_{o}"] * amount[i_i]
            d_free = d_free - binding + release
            d[i_b] = binding - internalisation
            d[i_i] = internalisation - release
        d[i_f] = d_free
    i_u = layout.sub_index("urine")
    d[i_u] = (1.0 - p["f_reabs"]) * filtered
    kidney_cells = "kidneys:internalised"
    if kidney_cells in layout.sub_names:
        k = layout.sub_index(kidney_cells)
        d[k] = d[k] + p["f_reabs"] * filtered
    else:  # no receptor-bearing kidney: reabsorbed ligand returns to plasma (no kidney trapping)
        d_plasma = d_plasma + p["f_reabs"] * filtered
    d[ip] = d_plasma
    return xp.stack(d)


def rhs(layout: Layout, decay_constant_per_h: float, frozen_receptors: bool = False):
    """The ODE right-hand side ``f(t, y, args)`` with ``args = (params, ligand_rate_nmol_h)``.

    ``frozen_receptors=True`` gives ``f(t, y, args, occupancy_total)``: the same equations with
    the receptor occupancy taken from ``occupancy_total`` (the total-peptide sub-state, n_sub)
    instead of ``y``, so ``f`` is affine in ``y`` — the late-phase linearisation used by
    :mod:`tdt.pbpk._grid_solver`.
    """
    n = layout.n_sub
    report = layout.report_matrix()
    lam = decay_constant_per_h

    def f_frozen(t, y, args, occupancy_total):
        params, ligand_rate = args
        total, hot = y[:n], y[n:2 * n]
        line, rate = y[layout.line_index], y[layout.rate_index]
        d_total = fluxes(layout, params, occupancy_total, total).at[0].add(ligand_rate)
        d_hot = fluxes(layout, params, occupancy_total, hot) - lam * hot
        d_hot = d_hot.at[0].add(rate)
        d_line = -rate - lam * line
        d_rate = -lam * rate
        return jnp.concatenate([d_total, d_hot, jnp.stack([d_line, d_rate]), report @ hot,
                                line[None]])

    if frozen_receptors:
        return f_frozen

    def f(t, y, args):
        return f_frozen(t, y, args, y[:n])

    return f
