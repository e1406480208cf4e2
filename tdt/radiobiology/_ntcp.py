"""Normal-tissue complication probability: Lyman–Kutcher–Burman (LKB) model.

NTCP = Phi((D_eff - TD50) / (m TD50)),  D_eff = (Σ v_i D_i^{1/n} / Σ v_i)^n  (gEUD with a = 1/n)
(Lyman, Radiat Res Suppl 1985;8:S13; Kutcher & Burman, IJROBP 1989;16:1623; Burman et al.,
IJROBP 1991;21:123). Published TD50 values come from external-beam therapy in ~2 Gy fractions,
so the dose that goes in is EQD2 (convert RPT BED with :func:`tdt.radiobiology.eqd2`);
:func:`ntcp_organ` does that conversion from BED with the parameter set's alpha/beta.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import ndtr

from tdt._types import Scalar, ScalarLike
from tdt.errors import InputError
from tdt.radiobiology._closed_forms import eqd2
from tdt.radiobiology._eud import geud
from tdt.radiobiology._parameters import NtcpParameters, ntcp_parameters
from tdt.radiobiology._validation import check_dose_gy, check_positive

#: dose metrics an LKB parameter set can be defined on (:attr:`NtcpParameters.dose_metric`);
#: :func:`ntcp_dose` takes the index into this tuple so that it can be traced per organ.
NTCP_METRICS = ("eqd2", "bed", "absorbed_dose")


def ntcp_dose(metric_index, bed_gy, absorbed_dose_gy, alpha_beta_gy: ScalarLike) -> Scalar:
    """The dose (Gy) an LKB parameter set is defined on, per element: EQD2 of ``bed_gy`` with the
    set's ``alpha_beta_gy`` (index 0), the BED itself (1) or the absorbed dose (2).

    ``metric_index`` indexes :data:`NTCP_METRICS` and may be an array (one per organ) and traced:
    the explorer evaluates every organ in one jitted call. Broadcasts; no input checks.
    """
    metric = jnp.asarray(metric_index)
    return jnp.select(
        [metric == 0, metric == 1],
        [eqd2(bed_gy, alpha_beta_gy, validate=False), jnp.asarray(bed_gy, dtype=float)],
        jnp.asarray(absorbed_dose_gy, dtype=float))


def ntcp_lkb(
    dose_gy,
    td50_gy: ScalarLike,
    m: ScalarLike,
    n: ScalarLike = 1.0,
    *,
    volumes=None,
    voxel_axis=None,
    validate=True,
) -> Scalar:
    """LKB NTCP (probability in [0, 1]).

    Parameters
    ----------
    dose_gy : array
        EQD2 (or BED / absorbed dose, matching the TD50's metric) in Gy. With ``voxel_axis``
        None (default) each element is a uniform (or already effective) organ dose and the
        result has the same shape (e.g. one NTCP per posterior draw). With ``voxel_axis`` set,
        that axis holds voxel / DVH-bin doses, reduced to D_eff = gEUD(a = 1/n).
    td50_gy : float or array
        Uniform dose with 50 % complication probability (Gy, > 0).
    m : float or array
        Slope parameter (> 0): the standard deviation of the probit is m·TD50.
    n : float
        Volume-effect parameter (> 0), used only when ``voxel_axis`` is set.
    volumes : array, optional
        Relative voxel / bin volumes along ``voxel_axis`` (default equal).
    """
    if validate:
        check_dose_gy("dose_gy", dose_gy)
        check_positive("td50_gy", td50_gy)
        check_positive("m", m)
        check_positive("n", n)
    dose = jnp.asarray(dose_gy, dtype=float)
    if voxel_axis is not None:
        dose = geud(dose, 1.0 / jnp.asarray(n, dtype=float), volumes=volumes, axis=voxel_axis,
                    validate=False)
    elif volumes is not None:
        raise InputError("volumes: only meaningful with voxel_axis set (voxel or DVH-bin doses)")
    td50 = jnp.asarray(td50_gy, dtype=float)
    return ndtr((dose - td50) / (jnp.asarray(m, dtype=float) * td50))


def ntcp_organ(
    organ: str | NtcpParameters,
    bed_gy,
    *,
    absorbed_dose_gy=None,
    volumes=None,
    voxel_axis=None,
    validate=True,
) -> Scalar:
    """NTCP for a named organ with its default (cited) LKB parameter set.

    ``organ``: "kidneys", "salivary_glands", "red_marrow" (aliases accepted) or an
    :class:`NtcpParameters` of your own. ``bed_gy`` is converted to EQD2 with the set's
    alpha/beta when its ``dose_metric`` is "eqd2"; a set defined on absorbed dose needs
    ``absorbed_dose_gy``.
    """
    params = organ if isinstance(organ, NtcpParameters) else ntcp_parameters(organ)
    if params.dose_metric not in NTCP_METRICS:
        raise InputError(
            f"dose_metric: expected 'eqd2', 'bed' or 'absorbed_dose', got {params.dose_metric!r}"
        )
    if params.dose_metric == "absorbed_dose" and absorbed_dose_gy is None:
        raise InputError(
            f"absorbed_dose_gy: the NTCP parameters of {params.organ!r} are defined on "
            "absorbed dose; pass absorbed_dose_gy"
        )
    if params.dose_metric == "absorbed_dose":
        dose = absorbed_dose_gy
    else:
        if validate:
            check_dose_gy("bed_gy", bed_gy)
            check_positive("alpha_beta_gy", params.alpha_beta_gy)
        dose = ntcp_dose(NTCP_METRICS.index(params.dose_metric), bed_gy, 0.0,
                         params.alpha_beta_gy)
    return ntcp_lkb(dose, params.td50_gy, params.m, params.n, volumes=volumes,
                    voxel_axis=voxel_axis, validate=validate)
