"""De-identification on ingest: DICOM PS3.15 Annex E Basic Application Level Confidentiality
Profile, with the Retain Longitudinal Temporal Information with Modified Dates Option.

Actions (PS3.15 Table E.1-1 action codes):
- ``X`` remove; ``Z`` replace with a zero-length value; ``D`` replace with a dummy value
  (pseudonymous patient name/ID derived from a secret salt, so that the files of one patient
  stay linked);
- ``U`` every UID (VR UI) that is not a registered DICOM UID (SOP classes, transfer syntaxes,
  coding schemes) is remapped with ``generate_uid(entropy_srcs=[salt, old])``: consistent across
  files and runs with the same salt, references between objects stay intact;
- dates: every DA and DT value (except the birth date, which is emptied) is shifted by the same
  whole number of days; TM values are kept. Intervals between injection and acquisitions are
  therefore preserved exactly;
- private attributes (odd groups) are removed; curves/overlays (groups 50xx/60xx) are removed.

The list :data:`PROFILE` covers the attributes of the profile that occur in nuclear-medicine and
RT objects; it is not the full Table E.1-1 (see docs/imaging.md). Nothing identifying is logged.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import secrets
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid

from tdt.imaging.dicom_io import UID_PREFIX

#: keyword → action ("X" remove, "Z" empty, "D" dummy) (PS3.15 Table E.1-1, Basic Profile column)
PROFILE: dict[str, str] = {
    "PatientName": "D", "PatientID": "D", "PatientBirthDate": "Z", "PatientSex": "Z",
    "PatientBirthTime": "X", "PatientAge": "X", "PatientAddress": "X",
    "PatientTelephoneNumbers": "X", "OtherPatientIDs": "X", "OtherPatientNames": "X",
    "OtherPatientIDsSequence": "X", "PatientBirthName": "X", "PatientMotherBirthName": "X",
    "MedicalRecordLocator": "X", "EthnicGroup": "X", "Occupation": "X",
    "AdditionalPatientHistory": "X", "PatientComments": "X", "PatientWeight": "X",
    "PatientSize": "X", "MilitaryRank": "X", "BranchOfService": "X", "CountryOfResidence": "X",
    "RegionOfResidence": "X", "PatientInsurancePlanCodeSequence": "X",
    "PatientReligiousPreference": "X", "ResponsiblePerson": "X", "ResponsibleOrganization": "X",
    "InstitutionName": "X", "InstitutionAddress": "X", "InstitutionalDepartmentName": "X",
    "InstitutionCodeSequence": "X", "ReferringPhysicianName": "Z",
    "ReferringPhysicianAddress": "X", "ReferringPhysicianTelephoneNumbers": "X",
    "ReferringPhysicianIdentificationSequence": "X", "PhysiciansOfRecord": "X",
    "PerformingPhysicianName": "X", "NameOfPhysiciansReadingStudy": "X", "OperatorsName": "X",
    "RequestingPhysician": "X", "RequestingService": "X", "ScheduledPerformingPhysicianName": "X",
    "AccessionNumber": "Z", "StudyID": "Z", "StationName": "X", "DeviceSerialNumber": "X",
    "StudyDescription": "X", "SeriesDescription": "X", "AdmittingDiagnosesDescription": "X",
    "RequestAttributesSequence": "X", "ContentCreatorName": "Z", "ReviewerName": "X",
    "ImageComments": "X", "DerivationDescription": "X", "ProtocolName": "X",
    "PerformedProcedureStepDescription": "X", "PerformedProcedureStepID": "X",
    "ScheduledProcedureStepDescription": "X", "RequestedProcedureDescription": "X",
    "RequestedProcedureID": "X", "InterpretationAuthor": "X", "PerformedLocation": "X",
    "PerformedStationName": "X", "ReferencedPatientSequence": "X", "ReferencedStudySequence": "X",
    "IssuerOfPatientID": "X", "TextComments": "X", "DoseComment": "X",
    "StructureSetName": "X", "StructureSetDescription": "X", "ROIInterpreter": "Z",
}

#: DICOM codes stating what was done (CID 7050 De-identification Method)
_METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)


def _is_registered_uid(value: str) -> bool:
    """True for UIDs defined by the DICOM standard (classes, transfer syntaxes, coding schemes)."""
    uid = UID(value)
    return uid.name != str(uid) or str(uid).startswith("1.2.840.10008.")


@dataclass
class Deidentifier:
    """Applies the profile with one salt, so that many files of a study map consistently.

    Attributes
    ----------
    salt: secret text; the same salt gives the same UIDs, pseudonyms and date shift. Default:
        a random 128-bit token (not reproducible across runs).
    date_shift_days: whole days added to every date; default derived from the salt, in
        [-3650, -365] (dates move into the past).
    uid_map: old → new UIDs seen so far (kept in memory only, never logged or written).
    """

    salt: str = field(default_factory=lambda: secrets.token_hex(16))
    date_shift_days: int | None = None
    uid_map: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.date_shift_days is None:
            digest = hashlib.sha256(("date-shift:" + self.salt).encode()).digest()
            self.date_shift_days = -365 - int.from_bytes(digest[:4], "big") % 3286

    def new_uid(self, old: str) -> str:
        if old not in self.uid_map:
            self.uid_map[old] = generate_uid(prefix=UID_PREFIX, entropy_srcs=[self.salt, old])
        return self.uid_map[old]

    def pseudonym(self, text: str) -> str:
        return "TDT-" + hashlib.sha256((self.salt + "|" + text).encode()).hexdigest()[:12].upper()

    def _shift_da(self, value: str) -> str:
        date = _dt.datetime.strptime(value.strip()[:8], "%Y%m%d").date()
        return (date + _dt.timedelta(days=self.date_shift_days)).strftime("%Y%m%d")

    def _shift_dt(self, value: str) -> str:
        value = value.strip()
        return self._shift_da(value[:8]) + value[8:]

    def _visit(self, ds: Dataset) -> None:
        for element in list(ds):
            tag = element.tag
            if tag.is_private or (tag.group & 0xFF00) in (0x5000, 0x6000):
                del ds[tag]
                continue
            keyword = element.keyword
            action = PROFILE.get(keyword)
            if action == "X":
                del ds[tag]
                continue
            if action == "Z":
                element.value = ""
                continue
            if action == "D":
                element.value = self.pseudonym(str(element.value))
                continue
            if element.VR == "SQ":
                for item in element.value:
                    self._visit(item)
            elif element.VR == "UI" and element.value:
                values = element.value if element.VM > 1 else [element.value]
                mapped = [v if _is_registered_uid(str(v)) else self.new_uid(str(v))
                          for v in values]
                element.value = mapped if element.VM > 1 else mapped[0]
            elif element.VR in ("DA", "DT") and element.value:
                shift = self._shift_da if element.VR == "DA" else self._shift_dt
                if element.VM > 1:
                    element.value = [shift(str(v)) for v in element.value if str(v).strip()]
                else:
                    element.value = shift(str(element.value))

    def __call__(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` in place (and its file meta) and return it."""
        self._visit(ds)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "MediaStorageSOPInstanceUID" in meta:
            old = str(meta.MediaStorageSOPInstanceUID)
            if not _is_registered_uid(old):
                meta.MediaStorageSOPInstanceUID = self.new_uid(old)
        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        ds.DeidentificationMethod = "tdt: PS3.15 Basic Profile; dates shifted; UIDs remapped"
        codes = []
        for value, meaning in _METHOD_CODES:
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
            codes.append(code)
        ds.DeidentificationMethodCodeSequence = codes
        return ds


def deidentify(ds: Dataset, salt: str | None = None,
               date_shift_days: int | None = None) -> Dataset:
    """De-identify one dataset in place (for many files, use one :class:`Deidentifier`)."""
    tool = Deidentifier(salt=salt) if salt is not None else Deidentifier()
    if date_shift_days is not None:
        tool.date_shift_days = date_shift_days
    return tool(ds)
