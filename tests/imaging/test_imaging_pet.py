"""PET Image Storage reader (tdt.imaging._pet) and its dispatch in load_study.

Reference values are computed here by hand from the decay law A(t) = A(t₀)·2^(−(t−t₀)/T½), with
the ICRP-107 half-life of 18F, T½ = 109.77 min (ICRP Publication 107, Ann. ICRP 38(3), 2008),
typed in below (not read from tdt). The synthetic PET files are written with plain pydicom here
(not with tdt's writers), one file per slice, two bed positions acquired 3 min apart, and a
different RescaleSlope on every slice. For DecayCorrection NONE the stored frame means are
computed by numerical quadrature (scipy.integrate.quad), a second method next to the closed form
λT/(1 − e^{−λT}) the reader uses.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy.integrate import quad

from tdt.errors import DicomError, PlausibilityWarning, UnitError
from tdt.imaging import Geometry, extract_tacs, load_study, write_seg
from tdt.imaging._pet import PetImage, read_pet

PET_SOP = "1.2.840.10008.5.1.4.1.1.128"
HALF_LIFE_F18_S = 109.77 * 60.0  # ICRP-107
LAMBDA_S = math.log(2.0) / HALF_LIFE_F18_S
INJECTION = dt.datetime(2024, 3, 5, 9, 12, 30)
SERIES_START = INJECTION + dt.timedelta(minutes=60)  # t_ref
BED_S = 180.0  # frame duration per bed (s)
SHAPE = (6, 5, 4)  # slices 0-2 bed 1 (starts at t_ref), slices 3-5 bed 2 (starts t_ref + 180 s)
SPACING = (4.0, 4.0, 3.0)  # (column, row, slice) mm: PET voxels need not be cubic
ORIGIN = (-8.0, -10.0, -300.0)
FOR_UID = "1.2.826.0.1.3680043.8.498.1111"
WEIGHT_KG = 75.0
DOSE_MBQ = 200.0


def truth_bqml() -> np.ndarray:
    """Activity concentration at t_ref (Bq/mL), values in [2, 9] kBq/mL."""
    rng = np.random.default_rng(7)
    return rng.uniform(2000.0, 9000.0, SHAPE)


def slice_start(k: int) -> dt.datetime:
    return SERIES_START + dt.timedelta(seconds=0.0 if k < 3 else BED_S)


def stored_bqml(truth: np.ndarray, k: int, decay_correction: str) -> tuple[np.ndarray, float]:
    """Pixel values of slice k as a scanner would store them, and the DecayFactor it applied."""
    t_k = (slice_start(k) - SERIES_START).total_seconds()  # slice start after t_ref (s)
    t_ref_after_inj = (SERIES_START - INJECTION).total_seconds()
    if decay_correction == "START":
        return truth[k], 2.0 ** (t_k / HALF_LIFE_F18_S)
    if decay_correction == "ADMIN":
        return (truth[k] * 2.0 ** (t_ref_after_inj / HALF_LIFE_F18_S),
                2.0 ** ((t_k + t_ref_after_inj) / HALF_LIFE_F18_S))
    # NONE: the mean concentration over the frame [t_k, t_k + BED_S]
    mean = quad(lambda t: 2.0 ** (-t / HALF_LIFE_F18_S), t_k, t_k + BED_S)[0] / BED_S
    return truth[k] * mean, 1.0


def write_series(folder, truth=None, *, units="BQML", decay_correction="START",
                 counts_per_bqml=1.0, weight=WEIGHT_KG, drop=(), edit=None, philips=None,
                 hours_after_injection=1.0):
    """Write one PET series (one file per slice); returns the list of files."""
    truth = truth_bqml() if truth is None else truth
    folder.mkdir(parents=True, exist_ok=True)
    shift = dt.timedelta(hours=hours_after_injection - 1.0)  # moves the scan, not the injection
    series_uid = generate_uid(entropy_srcs=[str(folder), "series"])
    files = []
    for k in range(SHAPE[0]):
        values, factor = stored_bqml(truth, k, decay_correction)
        if units == "CNTS":
            values = values * counts_per_bqml
        elif units == "GML":  # SUVbw = C·W/D, D = dose at the decay reference (QIBA/UW)
            hours = {"START": 1.0, "ADMIN": 0.0}[decay_correction]
            dose_bq = DOSE_MBQ * 1e6 * 2.0 ** (-hours * 3600.0 / HALF_LIFE_F18_S)
            values = values * WEIGHT_KG * 1000.0 / dose_bq
        slope = float(values.max()) / 30000.0 * (1.0 + 0.1 * k)  # a different slope per slice
        stored = np.round(values / slope).astype(np.uint16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = PET_SOP
        meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(folder), str(k)])
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = PET_SOP, meta.MediaStorageSOPInstanceUID
        ds.Modality = "PT"
        ds.PatientName, ds.PatientID = "Roe^Richard", "PET-0042"
        if weight is not None:
            ds.PatientWeight = str(weight)
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2222"
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = FOR_UID
        ds.SeriesDate = (SERIES_START + shift).strftime("%Y%m%d")
        ds.SeriesTime = (SERIES_START + shift).strftime("%H%M%S")
        ds.AcquisitionDate = (slice_start(k) + shift).strftime("%Y%m%d")
        ds.AcquisitionTime = (slice_start(k) + shift).strftime("%H%M%S")
        ds.ActualFrameDuration = int(BED_S * 1000)
        ds.Units = units
        ds.DecayCorrection = decay_correction
        ds.DecayFactor = f"{factor:.8f}"
        ds.CorrectedImage = ["ATTN", "SCAT", "DECY"] if decay_correction != "NONE" else [
            "ATTN", "SCAT"]
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + k * SPACING[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [SPACING[1], SPACING[0]]
        ds.SliceThickness = SPACING[2]
        ds.InstanceNumber = k + 1
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = "0"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 0
        ds.Rows, ds.Columns = SHAPE[1], SHAPE[2]
        ds.PixelData = stored.tobytes()
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator = "C-111A1", "SRT"
        code.CodeMeaning = "^18^Fluorine"
        item = Dataset()
        item.Radiopharmaceutical = "Fluorodeoxyglucose"
        item.RadiopharmaceuticalStartTime = INJECTION.strftime("%H%M%S")
        item.RadiopharmaceuticalStartDateTime = INJECTION.strftime("%Y%m%d%H%M%S")
        item.RadionuclideTotalDose = f"{DOSE_MBQ * 1e6:.6g}"
        item.RadionuclideHalfLife = "6586.2"
        item.RadionuclideCodeSequence = Sequence([code])
        ds.RadiopharmaceuticalInformationSequence = Sequence([item])
        if philips is not None:
            block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
            block.add_new(0x09, "DS", f"{philips:.10g}")
        for keyword in drop:
            if "." in keyword:
                seq, sub = keyword.split(".")
                delattr(ds[seq].value[0], sub)
            elif keyword in ds:
                delattr(ds, keyword)
        if edit:
            edit(ds, k)
        path = folder / f"pt_{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def expected_suv(concentration_bqml):
    """SUVbw by hand: C · W / (A_inj · 2^(−Δt/T½)), Δt = t_ref − t_inj = 60 min (QIBA/UW)."""
    decayed_bq = DOSE_MBQ * 1e6 * 2.0 ** (-60.0 * 60.0 / HALF_LIFE_F18_S)
    return concentration_bqml * WEIGHT_KG * 1000.0 / decayed_bq


# ---------------------------------------------------------------------------- the reader
@pytest.mark.parametrize(("units", "decay_correction"), [
    ("BQML", "START"), ("BQML", "ADMIN"), ("BQML", "NONE"), ("CNTS", "START"), ("CNTS", "ADMIN"),
    ("CNTS", "NONE"), ("GML", "START"), ("GML", "ADMIN"),
])
def test_concentration_at_scan_start(tmp_path, units, decay_correction):
    truth = truth_bqml()
    files = write_series(tmp_path / "pt", truth, units=units, decay_correction=decay_correction,
                         counts_per_bqml=0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlausibilityWarning)  # consistent input: no warning
        image = read_pet(files[::-1], bqml_per_count=4.0 if units == "CNTS" else None)
    assert isinstance(image, PetImage)
    assert image.stored_units == units and image.stored_decay_correction == decay_correction
    assert image.units == "BQML" and image.decay_correction == "START"
    assert image.acquisition_datetime == SERIES_START
    assert image.hours_since_injection == pytest.approx(1.0)
    assert image.nuclide == "F-18"
    # 16-bit quantisation with values ≥ 2/9 of the slice maximum: relative error < 1e-4
    np.testing.assert_allclose(image.values, truth, rtol=1e-4)
    np.testing.assert_allclose(image.concentration_mbq_per_ml, truth * 1e-6, rtol=1e-4)
    assert image.geometry.spacing_mm == pytest.approx(SPACING)
    assert image.geometry.origin_mm == pytest.approx(ORIGIN)


def test_suv_bw_known_case(tmp_path):
    files = write_series(tmp_path / "pt")
    image = read_pet(files)
    assert image.patient_weight_kg == WEIGHT_KG
    # hand value for a 5 kBq/mL voxel: 200 MBq · 2^(−60/109.77) = 136.93 MBq; 5000·75000/136.93e6
    assert expected_suv(5000.0) == pytest.approx(2.7387, abs=2e-4)
    assert image.suv_bw_g_per_mbq * 5000e-6 == pytest.approx(expected_suv(5000.0), rel=1e-6)
    np.testing.assert_allclose(image.suv_bw, expected_suv(truth_bqml()), rtol=1e-4)


def test_cnts_from_philips_private_factor(tmp_path):
    files = write_series(tmp_path / "pt", units="CNTS", counts_per_bqml=0.5, philips=2.0)
    np.testing.assert_allclose(read_pet(files).values, truth_bqml(), rtol=1e-4)


# ---------------------------------------------------------------------------- bad input
def test_cnts_without_factor_names_the_field(tmp_path):
    files = write_series(tmp_path / "pt", units="CNTS")
    with pytest.raises(UnitError, match=r"Units \(0054,1001\) is CNTS.*bqml_per_count"):
        read_pet(files)
    with pytest.raises(UnitError, match="bqml_per_count"):
        read_pet(files, bqml_per_count=-1.0)


def test_gml_needs_weight_and_a_decay_reference(tmp_path):
    with pytest.raises(UnitError, match=r"GML.*PatientWeight \(0010,1030\)"):
        read_pet(write_series(tmp_path / "noweight", units="GML", weight=None))
    with pytest.raises(UnitError, match=r"GML with DecayCorrection \(0054,1102\) NONE"):
        read_pet(write_series(tmp_path / "none", units="GML", decay_correction="START",
                              edit=lambda ds, k: setattr(ds, "DecayCorrection", "NONE")))


def test_unknown_units(tmp_path):
    files = write_series(tmp_path / "pt", edit=lambda ds, k: setattr(ds, "Units", "PROPCPS"))
    with pytest.raises(UnitError, match=r"Units \(0054,1001\) 'PROPCPS'.*BQML, CNTS, GML"):
        read_pet(files)


def test_missing_radiopharmaceutical_sequence(tmp_path):
    files = write_series(tmp_path / "pt", drop=("RadiopharmaceuticalInformationSequence",))
    with pytest.raises(DicomError, match=r"RadiopharmaceuticalInformationSequence \(0054,0016\)"):
        read_pet(files)


def test_admin_without_start_time(tmp_path):
    files = write_series(tmp_path / "pt", decay_correction="ADMIN", drop=(
        "RadiopharmaceuticalInformationSequence.RadiopharmaceuticalStartTime",
        "RadiopharmaceuticalInformationSequence.RadiopharmaceuticalStartDateTime"))
    with pytest.raises(DicomError, match="RadiopharmaceuticalStartDateTime"):
        read_pet(files)


def test_patient_weight_checks(tmp_path):
    with pytest.raises(DicomError, match=r"PatientWeight \(0010,1030\) -75 kg"):
        read_pet(write_series(tmp_path / "neg", weight=-75.0))
    with pytest.warns(PlausibilityWarning, match="PatientWeight"):
        image = read_pet(write_series(tmp_path / "grams", weight=75000.0))
    assert image.patient_weight_kg == 75000.0
    image = read_pet(write_series(tmp_path / "none", weight=None))
    assert image.suv_bw_g_per_mbq is None and image.suv_bw is None


def test_inconsistent_decay_factor_and_half_life_warn(tmp_path):
    def bad_factor(ds, k):
        ds.DecayFactor = "1.5"

    with pytest.warns(PlausibilityWarning, match=r"DecayFactor \(0054,1321\)"):
        read_pet(write_series(tmp_path / "factor", edit=bad_factor))

    def wrong_half_life(ds, k):  # the half-life of 68Ga with an 18F code
        ds.RadiopharmaceuticalInformationSequence[0].RadionuclideHalfLife = "4062.6"

    with pytest.warns(PlausibilityWarning, match="RadionuclideHalfLife"):
        read_pet(write_series(tmp_path / "halflife", edit=wrong_half_life))


def test_missing_decay_correction_and_mixed_units(tmp_path):
    with pytest.raises(DicomError, match=r"DecayCorrection \(0054,1102\)"):
        read_pet(write_series(tmp_path / "nodc", drop=("DecayCorrection",)))

    def mixed(ds, k):
        if k == 2:
            ds.Units = "CNTS"

    with pytest.raises(DicomError, match="Units differs between the slices"):
        read_pet(write_series(tmp_path / "mixed", edit=mixed))


# ---------------------------------------------------------------------------- load_study
def test_load_study_pet_with_seg(tmp_path):
    """A PET series + SEG → de-identified Study; VOI MBq = truth concentration × volume."""
    folder = tmp_path / "study"
    truth = truth_bqml()
    files = write_series(folder / "pt", truth, decay_correction="ADMIN")
    geometry = Geometry(shape=SHAPE, origin_mm=ORIGIN, spacing_mm=SPACING,
                        frame_of_reference_uid=FOR_UID)
    mask = np.zeros(SHAPE, bool)
    mask[1:5, 1:4, 1:3] = True
    from tdt.imaging import read_dataset

    first = read_dataset(files[0])
    write_seg(folder / "seg.dcm", {"lesion": mask}, geometry,
              patient={"PatientName": "Roe^Richard", "PatientID": "PET-0042",
                       "StudyInstanceUID": first.StudyInstanceUID,
                       "FrameOfReferenceUID": FOR_UID},
              seed_text="seg", referenced_series_uid=first.SeriesInstanceUID,
              referenced_sop_uids=[str(read_dataset(f).SOPInstanceUID) for f in files],
              created=SERIES_START)
    with pytest.warns(PlausibilityWarning, match="field of view"):  # a 6x5x4 voxel "patient"
        study = load_study(folder, salt="pet-test")
    assert study.deidentified and study.nuclide == "F-18"
    assert study.injected_activity_mbq == pytest.approx(DOSE_MBQ)
    (tp,) = study.time_points
    assert tp.modality == "PT" and tp.time_h == pytest.approx(1.0)
    voxel_ml = 0.4 * 0.4 * 0.3
    np.testing.assert_allclose(tp.activity_mbq, truth * voxel_ml * 1e-6, rtol=1e-4)
    # PatientWeight is removed by de-identification but was read before it: SUV survives
    assert tp.suv_bw_g_per_mbq * 1e-6 == pytest.approx(expected_suv(1.0), rel=1e-6)
    assert "PatientWeight" not in study.patient_info
    tac = extract_tacs(study)["lesion"]
    assert tac.activity_mbq[0] == pytest.approx(truth[mask].sum() * voxel_ml * 1e-6, rel=1e-4)
    assert tac.mean_concentration_mbq_per_ml[0] == pytest.approx(truth[mask].mean() * 1e-6,
                                                                  rel=1e-4)
    assert "PET" in study.summary()


def test_load_study_bad_pet_is_skipped_with_reason(tmp_path):
    write_series(tmp_path / "study" / "pt", units="CNTS")
    with pytest.raises(DicomError, match="no usable quantitative SPECT.*PET.*CNTS"):
        load_study(tmp_path / "study", salt="x")
    with pytest.warns(PlausibilityWarning, match="field of view"):
        study = load_study(tmp_path / "study", salt="x", pet_bqml_per_count=1.0)
    np.testing.assert_allclose(study.time_points[0].activity_mbq,
                               truth_bqml() * 0.048 * 1e-6, rtol=1e-4)


def test_load_study_two_pet_time_points(tmp_path):
    """Two PET series (1 h, 3 h; ADMIN and NONE) → two time points, each at its own scan start."""
    truth = truth_bqml()
    later = truth * 2.0 ** (-2.0 * 3600.0 / HALF_LIFE_F18_S)  # same tracer, decayed 2 h more
    write_series(tmp_path / "s" / "early", truth, decay_correction="ADMIN")
    write_series(tmp_path / "s" / "late", later, decay_correction="NONE",
                 hours_after_injection=3.0)
    with pytest.warns(PlausibilityWarning, match="field of view"):
        study = load_study(tmp_path / "s", salt="x")
    np.testing.assert_allclose(study.times_h, [1.0, 3.0])
    totals = [tp.total_activity_mbq for tp in study.time_points]
    assert totals[1] / totals[0] == pytest.approx(2.0 ** (-2.0 * 60.0 / 109.77), rel=1e-4)
    assert [tp.modality for tp in study.time_points] == ["PT", "PT"]


def test_post_processed_series_time_falls_back_to_earliest_acquisition(tmp_path):
    """SeriesTime after the slices' acquisition (a re-saved series): t_ref = earliest slice start."""
    def late_series(ds, k):
        ds.SeriesTime = (SERIES_START + dt.timedelta(minutes=40)).strftime("%H%M%S")

    image = read_pet(write_series(tmp_path / "pt", edit=late_series))
    assert image.acquisition_datetime == SERIES_START
    np.testing.assert_allclose(image.values, truth_bqml(), rtol=1e-4)


def test_decay_factor_warning_is_one_per_series(tmp_path):
    def philips_style(ds, k):  # DecayFactor 1 on every slice, although bed 2 started 180 s later
        ds.DecayFactor = "1.0"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_pet(write_series(tmp_path / "pt", edit=philips_style))
    messages = [str(w.message) for w in caught if issubclass(w.category, PlausibilityWarning)]
    assert len(messages) == 1 and "3 of 6 slices" in messages[0]


def test_load_study_philips_factor_survives_deidentification(tmp_path):
    """Private tags are removed by de-identification; the factor is read before it."""
    write_series(tmp_path / "s" / "pt", units="CNTS", counts_per_bqml=0.5, philips=2.0)
    with pytest.warns(PlausibilityWarning, match="field of view"):
        study = load_study(tmp_path / "s", salt="x")
    assert study.deidentified
    np.testing.assert_allclose(study.time_points[0].activity_mbq,
                               truth_bqml() * 0.048 * 1e-6, rtol=1e-4)


def test_dynamic_series_refused_and_single_valued_corrected_image(tmp_path):
    def dynamic(ds, k):
        ds.SeriesType = ["DYNAMIC", "IMAGE"]

    with pytest.raises(DicomError, match=r"SeriesType \(0054,1000\) 'DYNAMIC'"):
        read_pet(write_series(tmp_path / "dyn", edit=dynamic))

    def only_decay(ds, k):  # one value; no ATTN → not quantitative
        ds.CorrectedImage = "DECY"

    with pytest.warns(PlausibilityWarning, match=r"CorrectedImage.*ATTN"):
        read_pet(write_series(tmp_path / "noattn", edit=only_decay))
