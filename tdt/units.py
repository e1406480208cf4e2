"""Units of tdt: one convention, and every conversion in one place.

Convention (DESIGN.md): time **h**, activity **MBq**, time-integrated activity **MBq·h**,
absorbed dose **Gy**, dose rate **Gy/h**, mass **g**, volume **mL**, ligand amount **nmol**,
rate constants **1/h**, energy **MeV** per decay. S-values are stored as published
(mGy/(MBq·s)) and converted once, at load, to Gy/(MBq·h) (× 3.6).

Names carry their unit where it is not obvious (``activity_mbq``, ``half_life_h``). Functions
here are plain arithmetic so they work on floats, NumPy and JAX arrays alike.
"""

from __future__ import annotations

import math

from tdt.errors import UnitError

#: seconds per hour
SECONDS_PER_HOUR = 3600.0
#: minutes per hour
MINUTES_PER_HOUR = 60.0
#: hours per day
HOURS_PER_DAY = 24.0
#: joules per MeV (CODATA 2018, exact elementary charge)
JOULE_PER_MEV = 1.602176634e-13
#: Bq per MBq
BQ_PER_MBQ = 1.0e6
#: milliseconds per second
MS_PER_S = 1000.0
#: grams per kilogram
G_PER_KG = 1000.0
#: keV per MeV
KEV_PER_MEV = 1000.0
#: mm³ per mL (cm³)
MM3_PER_ML = 1000.0
#: ln 2 — the one definition in tdt (decay and clearance rates, half-lives, FWHM ↔ σ)
LN2 = math.log(2.0)

# --- time -------------------------------------------------------------------------------------

_TIME_TO_H = {
    "s": 1.0 / SECONDS_PER_HOUR,
    "sec": 1.0 / SECONDS_PER_HOUR,
    "min": 1.0 / MINUTES_PER_HOUR,
    "m": 1.0 / MINUTES_PER_HOUR,
    "h": 1.0,
    "hr": 1.0,
    "d": HOURS_PER_DAY,
    "day": HOURS_PER_DAY,
    "y": 365.2422 * HOURS_PER_DAY,  # tropical year, as radioactivedecay uses
    "ms": 1.0 / (1000.0 * SECONDS_PER_HOUR),
    "us": 1.0 / (1.0e6 * SECONDS_PER_HOUR),
}


def time_to_h(value, unit: str):
    """Convert a time from ``unit`` (s, min, h, d, y, ms, us) to hours."""
    try:
        return value * _TIME_TO_H[unit]
    except KeyError:
        raise UnitError(
            f"time unit: unknown {unit!r}; expected one of {sorted(_TIME_TO_H)}"
        ) from None


def seconds_to_h(time_s):
    """Time s → h (÷ 3600)."""
    return time_s / SECONDS_PER_HOUR


def h_to_seconds(time_h):
    """Time h → s (× 3600)."""
    return time_h * SECONDS_PER_HOUR


def ms_to_s(time_ms):
    """Time ms → s (÷ 1000), e.g. DICOM ActualFrameDuration (0018,1242)."""
    return time_ms / MS_PER_S


def s_to_ms(time_s):
    """Time s → ms (× 1000)."""
    return time_s * MS_PER_S


def per_h_to_per_s(rate_per_h):
    """Rate constant 1/h → 1/s (÷ 3600)."""
    return rate_per_h / SECONDS_PER_HOUR


def per_min_to_per_h(rate_per_min):
    """Rate constant 1/min → 1/h (× 60). Use where literature PBPK values are loaded."""
    return rate_per_min * MINUTES_PER_HOUR


def per_h_to_per_min(rate_per_h):
    """Rate constant 1/h → 1/min (÷ 60)."""
    return rate_per_h / MINUTES_PER_HOUR


def litre_to_ml(volume_l):
    """Volume L → mL."""
    return volume_l * 1000.0


def ml_to_litre(volume_ml):
    """Volume mL → L."""
    return volume_ml / 1000.0


def mm3_to_ml(volume_mm3):
    """Volume mm³ → mL (cm³) (÷ 1000)."""
    return volume_mm3 / MM3_PER_ML


def kg_to_g(mass_kg):
    """Mass kg → g (× 1000)."""
    return mass_kg * G_PER_KG


def l_per_min_to_ml_per_h(flow_l_per_min):
    """Flow L/min → mL/h."""
    return flow_l_per_min * 1000.0 * MINUTES_PER_HOUR


# --- activity -----------------------------------------------------------------------------------

def gbq_to_mbq(activity_gbq):
    """Activity GBq → MBq."""
    return activity_gbq * 1000.0


def mbq_to_gbq(activity_mbq):
    """Activity MBq → GBq."""
    return activity_mbq / 1000.0


def bq_to_mbq(activity_bq):
    """Activity Bq → MBq."""
    return activity_bq / BQ_PER_MBQ


def mbq_to_bq(activity_mbq):
    """Activity MBq → Bq."""
    return activity_mbq * BQ_PER_MBQ


def mci_to_mbq(activity_mci):
    """Activity mCi → MBq (1 Ci = 3.7e10 Bq exactly)."""
    return activity_mci * 37.0


# --- dose ---------------------------------------------------------------------------------------

def svalue_mgy_per_mbq_s_to_gy_per_mbq_h(s_mgy_per_mbq_s):
    """S-value mGy/(MBq·s) → Gy/(MBq·h): × 3600 s/h ÷ 1000 mGy/Gy = × 3.6."""
    return s_mgy_per_mbq_s * (SECONDS_PER_HOUR / 1000.0)


def gy_per_gbq(dose_gy, activity_mbq):
    """Absorbed dose per administered activity, Gy/GBq."""
    return dose_gy / mbq_to_gbq(activity_mbq)


def mev_per_decay_to_gy_g_per_mbq_h(energy_mev):
    """Energy per decay (MeV) → absorbed dose × mass per TIA, Gy·g/(MBq·h).

    Δ = E · 1.602e-13 J/MeV · 1e6 decays/(MBq·s) · 3600 s/h · 1000 g/kg. Divided by a mass in g
    this gives the local-absorption (absorbed fraction 1) S-value in Gy/(MBq·h) (MIRD Pamphlet 21).
    """
    return energy_mev * JOULE_PER_MEV * BQ_PER_MBQ * SECONDS_PER_HOUR * 1000.0


def mev_to_kev(energy_mev):
    """Energy MeV → keV."""
    return energy_mev * KEV_PER_MEV


def half_life_to_rate(half_life_h):
    """Half-life (h) → first-order rate constant (1/h): λ = ln 2 / T½."""
    return LN2 / half_life_h


def rate_to_half_life(rate_per_h):
    """Rate constant (1/h) → half-life (h)."""
    return LN2 / rate_per_h
