"""The RadLens Structured Report: a Comprehensive 3D SR (as IHE AI Results) holding a TID 1500
Measurement Report, built with highdicom.

Tree (codes and deviations from IHE AI Results and TID 1500: docs/dicom-results.md):

    Imaging Measurement Report (DCM 126000), TID 1500
      Language, Observation Context: device observer "RadLens" (model name and version)
      Procedure reported: Plain chest X-ray (SCT 399208008)
      Imaging Measurements (DCM 126010)
        Measurement Group "RadLens analysis" (TID 1501): algorithm (TID 4019: name, version,
            SHA-256), source image (the analysed SOP instance), finding site chest,
            Scope verdict (99RADLENS) = in / out of scope, RadLens call (99RADLENS) = the class (in scope only),
            Best illustration of finding (DCM 121080, IMAGE) = the Secondary Capture made with the SR
            (the heatmap overlay), when there is one
        Measurement Group per class (in scope only): finding type = the class (SNOMED CT where it
            exists), Probability (DCM 122157, UCUM "1"), Operating point (99RADLENS, UCUM "1"),
            At or above operating point (99RADLENS) = Yes / No (the flag)
      Qualitative Evaluations (UMLS C0034375): the notice "Research use only, not for diagnosis",
          the scope reason (out of scope), the decision rule
"""

from __future__ import annotations

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from ..ai.card import DECISION_RULE, DISCLAIMER
from ..ai.model import Classifier
from ..ai.prediction import Prediction

SCHEME = "99RADLENS"  # RadLens's private coding scheme (docs/dicom-results.md lists its codes)
SCHEME_ITEM = CodingSchemeIdentificationItem(
    designator=SCHEME, name="RadLens private codes", version="1",
    responsible_organization="RadLens project (research use only, not for diagnosis)")

SCOPE = CodedConcept("SCOPE", SCHEME, "Scope verdict")
IN_SCOPE = CodedConcept("IN_SCOPE", SCHEME, "In scope: frontal chest radiograph")
OUT_OF_SCOPE = CodedConcept("OUT_OF_SCOPE", SCHEME, "Out of scope: not analysed, no call")
SCOPE_REASON = CodedConcept("SCOPE_REASON", SCHEME, "Scope verdict reason")
OPERATING_POINT = CodedConcept("OP", SCHEME, "Operating point")
FLAG = CodedConcept("FLAG", SCHEME, "At or above operating point")
NOTICE = CodedConcept("NOTICE", SCHEME, "Intended use notice")
RULE = CodedConcept("DECISION_RULE", SCHEME, "Decision rule")
CALL = CodedConcept("CALL", SCHEME, "RadLens call (top class)")  # valued with the class
PROBABILITY = CodedConcept(*codes.DCM.Probability)  # DCM 122157
UNIT = CodedConcept(*codes.UCUM.NoUnits)  # UCUM "1"
YES, NO = CodedConcept(*codes.SCT.Yes), CodedConcept(*codes.SCT.No)
QUALITATIVE_EVALUATIONS = CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")  # TID 1500, report level
CHEST_XRAY = CodedConcept("399208008", "SCT", "Plain chest X-ray")
CHEST = CodedConcept(*codes.SCT.Chest)
ILLUSTRATION = CodedConcept(*codes.DCM.BestIllustrationOfFinding)  # DCM 121080: the heatmap capture

# The bundled model's classes as SNOMED CT concepts; any other label gets a 99RADLENS code.
CLASS_CODES = {
    "normal": CodedConcept(*codes.SCT.Normal),  # 17621005
    "covid": CodedConcept("840539006", "SCT", "COVID-19"),
    "covid-19": CodedConcept("840539006", "SCT", "COVID-19"),
    "pneumonia": CodedConcept("233604007", "SCT", "Pneumonia"),
    "tuberculosis": CodedConcept("56717001", "SCT", "Tuberculosis"),
}

SR_SERIES_NUMBER = 9901
SR_SERIES_DESCRIPTION = "RadLens AI results (research use only)"


def class_code(label: str) -> CodedConcept:
    """The class as a coded concept: SNOMED CT for the bundled model's classes, else 99RADLENS."""
    known = CLASS_CODES.get(label.strip().lower())
    if known is not None:
        return known
    value = "C-" + "".join(ch for ch in label.upper() if ch.isalnum())[:14]
    return CodedConcept(value, SCHEME, label[:64])


def device_uid(sha256: str) -> str:
    """The device observer's UID: one per model file (derived from its SHA-256), so every report
    by the same model names the same device."""
    return generate_uid(prefix=None, entropy_srcs=["RadLens model", sha256])


def algorithm(prediction: Prediction) -> hd.sr.AlgorithmIdentification:
    """TID 4019: the model's name and version; its SHA-256 as the first parameter."""
    return hd.sr.AlgorithmIdentification(
        name=prediction.model_name, version=prediction.model_version, manufacturer="RadLens",
        parameters=[f"SHA-256 {prediction.model_sha256}"])


def _text(name: CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def _summary_group(prediction: Prediction, source: Dataset,
                   illustration: Dataset | None = None) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """The group for the image as a whole: scope verdict, (in scope) the call, and the Secondary
    Capture that illustrates it (``illustration``), when one was made."""
    evaluations = [hd.sr.QualitativeEvaluation(SCOPE, IN_SCOPE if prediction.in_scope else OUT_OF_SCOPE)]
    if prediction.in_scope and prediction.call:
        evaluations.append(hd.sr.QualitativeEvaluation(CALL, class_code(prediction.call)))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="RadLens analysis"),
        algorithm_id=algorithm(prediction), finding_sites=[hd.sr.FindingSite(CHEST)],
        qualitative_evaluations=evaluations,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)])
    if illustration is not None:  # TID 1501 is extensible; highdicom has no parameter for this item
        group[0].ContentSequence.append(illustration_item(illustration))
    return group


def illustration_item(capture: Dataset) -> hd.sr.ImageContentItem:
    """The IMAGE item "Best illustration of finding" (DCM 121080) referencing ``capture``."""
    return hd.sr.ImageContentItem(
        name=ILLUSTRATION, referenced_sop_class_uid=capture.SOPClassUID,
        referenced_sop_instance_uid=capture.SOPInstanceUID, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def _class_group(prediction: Prediction, index: int, source: Dataset) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """One class: its probability, its operating point and whether it is flagged."""
    label = prediction.labels[index]
    measurements = [hd.sr.Measurement(name=PROBABILITY, value=float(prediction.probs[index]), unit=UNIT)]
    op = prediction.operating_points.get(label)
    evaluations = []
    if op is not None:
        measurements.append(hd.sr.Measurement(name=OPERATING_POINT, value=float(op), unit=UNIT))
        evaluations.append(hd.sr.QualitativeEvaluation(FLAG, YES if label in prediction.flags else NO))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"RadLens class {label}"[:64]),
        finding_type=class_code(label), algorithm_id=algorithm(prediction),
        finding_sites=[hd.sr.FindingSite(CHEST)], measurements=measurements,
        qualitative_evaluations=evaluations or None,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)])


def _report(prediction: Prediction, source: Dataset, illustration: Dataset | None = None) -> hd.sr.MeasurementReport:
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid(prediction.model_sha256), name="RadLens", manufacturer_name="RadLens",
            model_name=f"{prediction.model_name} {prediction.model_version}"[:64]))
    groups = [_summary_group(prediction, source, illustration)]
    if prediction.in_scope:
        groups += [_class_group(prediction, i, source) for i in range(len(prediction.labels))]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=CHEST_XRAY, imaging_measurements=groups)
    # TID 1500's report-level qualitative evaluations (highdicom's MeasurementReport does not build them)
    container = hd.sr.ContainerContentItem(name=QUALITATIVE_EVALUATIONS,
                                           relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    items = [_text(NOTICE, DISCLAIMER)]
    if not prediction.in_scope:
        items.append(_text(SCOPE_REASON, prediction.scope.reason or "out of scope"))
    items.append(_text(RULE, prediction.decision_rule or DECISION_RULE))
    container.ContentSequence = hd.sr.ContentSequence(items)
    report[0].ContentSequence.append(container)
    return report


def build_sr(evidence: Dataset, prediction: Prediction, classifier: Classifier,
             illustration: Dataset | None = None) -> hd.sr.Comprehensive3DSR:
    """The Structured Report for one analysed image (``evidence``: the source header).
    ``illustration``: the Secondary Capture made for the same image (``dicom_sc.build_sc``), to
    reference as "Best illustration of finding" in the content and list in the Current
    Requested Procedure Evidence Sequence with the source (it is in the source's study)."""
    if illustration is not None and illustration.StudyInstanceUID != evidence.StudyInstanceUID:
        raise ValueError("the secondary capture to reference is not in the source image's study")
    sr = hd.sr.Comprehensive3DSR(
        evidence=[evidence] + ([illustration] if illustration is not None else []),
        content=_report(prediction, evidence, illustration)[0],
        series_instance_uid=hd.UID(), series_number=SR_SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="RadLens", is_complete=True, is_final=False, is_verified=False,
        series_description=SR_SERIES_DESCRIPTION, manufacturer_model_name=classifier.card.name[:64],
        coding_schemes=[SCHEME_ITEM])
    sr.SoftwareVersions = list(versions(classifier))
    return sr


def versions(classifier: Classifier) -> tuple[str, str]:
    """Software Versions of a result: RadLens's and the model's."""
    from .. import __version__

    return f"RadLens {__version__}", f"{classifier.card.name} {classifier.card.version}"[:64]
