"""The RadLens heatmap overlay as a DICOM Secondary Capture (highdicom ``SCImage``, RGB).

The image: the source as displayed (modality LUT, VOI, MONOCHROME1 inversion: what the model
saw) with the call's Grad-CAM heatmap blended in (``engine.ai.cam.overlay``, the model's fixed CAM
scale), under a black banner with the notice "Research use only, not for diagnosis" and what
the overlay shows, burned in. The banner is added above the image, so no pixel of the
radiograph is hidden. An out-of-scope image gets no heatmap: the banner says why.
In the source's study, in a new series; BurnedInAnnotation YES; the source image referenced.
"""

from __future__ import annotations

import cv2
import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from ..ai.cam import cam_scale, card_cam_scale, overlay
from ..ai.card import DISCLAIMER
from ..ai.model import Classifier
from ..ai.prediction import Prediction
from ..io.image import LoadedImage
from .dicom_sr import versions

SC_SERIES_NUMBER = 9902
SC_SERIES_DESCRIPTION = "RadLens heatmap (research use only)"
OPACITY = 0.5
FONT = cv2.FONT_HERSHEY_SIMPLEX
BANNER_BG = (0, 0, 0)
BANNER_FG = (255, 255, 255)


def banner_lines(prediction: Prediction) -> list[str]:
    """The text burned into the banner, the notice first."""
    model = f"{prediction.model_name} {prediction.model_version}"
    if not prediction.in_scope:
        return [f"{DISCLAIMER.upper()}", f"{model}: out of scope, not analysed, no call"]
    return [f"{DISCLAIMER.upper()}", f"{model}: call {prediction.call} ({prediction.top_prob:.2f}); "
            f"heatmap: Grad-CAM of {prediction.call}"]


def _fit_scale(text: str, width: int, height: int) -> tuple[float, int]:
    """The largest font scale (and its stroke thickness) at which ``text`` fits in width x height."""
    scale = height / 30.0  # Hershey simplex at scale 1 is about 22 px tall (with descenders)
    for _ in range(4):
        thickness = max(1, round(scale * 1.6))
        (tw, _), _ = cv2.getTextSize(text, FONT, scale, thickness)
        if tw <= width:
            break
        scale *= 0.98 * width / tw
    return scale, thickness


def with_banner(rgb: np.ndarray, lines: list[str]) -> np.ndarray:
    """``rgb`` (uint8 HxWx3) under a black banner holding ``lines`` in white."""
    h, w = rgb.shape[:2]
    line_h = max(16, round(h * 0.03))
    pad = max(4, line_h // 4)
    band = np.zeros((line_h * len(lines) + 2 * pad, w, 3), np.uint8)
    band[:] = BANNER_BG
    for i, text in enumerate(lines):
        scale, thick = _fit_scale(text, w - 2 * pad, line_h)
        (_, th), base = cv2.getTextSize(text, FONT, scale, thick)
        y = pad + i * line_h + (line_h + th) // 2 - base // 2
        cv2.putText(band, text, (pad, y), FONT, scale, BANNER_FG, thick, cv2.LINE_AA)
    return np.ascontiguousarray(np.concatenate([band, rgb], axis=0))


def overlay_rgb(image: LoadedImage, prediction: Prediction, classifier: Classifier) -> np.ndarray:
    """The displayed image with the call's heatmap (none out of scope), with the banner."""
    if prediction.in_scope:
        scale = cam_scale(prediction.cam, prediction.top_index, card_cam_scale(classifier.card))
        heat = prediction.heatmap(prediction.top_index, scale=scale.value)
    else:
        heat = np.zeros(image.shape, np.float32)
    return with_banner(overlay(image.pixels, heat, OPACITY), banner_lines(prediction))


def _orientation(evidence: Dataset) -> tuple[str, str] | None:
    value = evidence.get("PatientOrientation")
    parts = [str(v) for v in (value or [])] if not isinstance(value, str) else value.split("\\")
    valid = {"A", "P", "R", "L", "H", "F"}
    if len(parts) == 2 and all(p and set(p) <= valid for p in parts):
        return parts[0], parts[1]
    return None


def _body_part_and_laterality(sc: Dataset, evidence: Dataset) -> None:
    """The source's Body Part Examined, and Laterality (Type 2C): the source's R or L; absent for
    a named body part the source gives no laterality for (the chest is unpaired); else empty."""
    body = str(evidence.get("BodyPartExamined", "") or "").strip().upper()
    if body:
        sc.BodyPartExamined = body[:16]
    laterality = str(evidence.get("Laterality", "") or "").strip().upper()
    if laterality in ("R", "L"):
        sc.Laterality = laterality
    elif not body:
        sc.Laterality = None


def build_sc(evidence: Dataset, image: LoadedImage, prediction: Prediction, classifier: Classifier) -> hd.sc.SCImage:
    """The Secondary Capture of the heatmap overlay for one analysed image."""
    rgb = overlay_rgb(image, prediction, classifier)
    orientation = _orientation(evidence)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=evidence, pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", patient_orientation=orientation or ("L", "F"),
        series_instance_uid=hd.UID(), series_number=SC_SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="RadLens", series_description=SC_SERIES_DESCRIPTION,
        manufacturer_model_name=classifier.card.name[:64],
        transfer_syntax_uid="1.2.840.10008.1.2.1")
    if orientation is None:  # Type 2: empty when the source does not say (never invented)
        sc.PatientOrientation = None
    sc.copy_patient_and_study_information(evidence)
    _body_part_and_laterality(sc, evidence)
    sc.SoftwareVersions = list(versions(classifier))
    sc.BurnedInAnnotation = "YES"
    sc.ImageComments = f"{DISCLAIMER}. " + " ".join(banner_lines(prediction)[1:])
    sc.DerivationDescription = (
        ("Grad-CAM heatmap of the call blended over the displayed image; " if prediction.in_scope
         else "Displayed image (out of scope: no heatmap); ")
        + f"notice banner burned in above the image. {prediction.model_name} {prediction.model_version}")[:1024]
    source = Dataset()
    source.ReferencedSOPClassUID = evidence.SOPClassUID
    source.ReferencedSOPInstanceUID = evidence.SOPInstanceUID
    source.PurposeOfReferenceCodeSequence = [hd.sr.CodedConcept.from_code(codes.DCM.SourceImageForImageProcessingOperation)]
    sc.SourceImageSequence = [source]
    return sc
