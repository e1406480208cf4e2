"""Deprecated location: the bolus eigen-solution lives in :mod:`tdt.pbpk` (its one home).

Kept only so that existing imports (``from tdt.twin.spectral import batched_bolus_exponentials``)
keep working; new code imports from :mod:`tdt.pbpk`. No implementation here.
"""

from tdt.pbpk import activity_at, batched_bolus_exponentials, bolus_exponentials
from tdt.pbpk import mammillary_indices as check_mammillary

__all__ = ["activity_at", "batched_bolus_exponentials", "bolus_exponentials", "check_mammillary"]
