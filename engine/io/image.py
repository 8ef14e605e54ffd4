"""Data that crosses threads: frozen dataclasses holding numpy arrays and plain values."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Identifiers:
    """Patient and study identifiers, kept apart so reports can leave them out."""

    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    accession_number: str = ""
    study_date: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units (DICOM PS3.3 C.11.2.1.2)."""

    center: float
    width: float
    function: str = "LINEAR"  # LINEAR, LINEAR_EXACT or SIGMOID
    name: str = ""


@dataclass(frozen=True)
class ImageMeta:
    path: str
    format: str  # "dicom", "png" or "jpeg"
    width: int
    height: int
    modality: str = ""
    photometric: str = ""
    bits_stored: int = 8
    transfer_syntax: str = ""
    transfer_syntax_name: str = ""
    pixel_spacing: tuple[float, float] | None = None  # Pixel Spacing (0028,0030), mm: (row, column) spacing
    imager_pixel_spacing: tuple[float, float] | None = None  # Imager Pixel Spacing (0018,1164): at the detector
    spacing_calibration_type: str = ""  # Pixel Spacing Calibration Type (0028,0A02): GEOMETRY, FIDUCIAL or ""
    magnification_factor: float | None = None  # Estimated Radiographic Magnification Factor (0018,1114)
    view_position: str = ""
    body_part: str = ""
    description: str = ""  # Study / Series Description and Protocol Name, " | "-joined (scope evidence)
    frames: int = 1
    frame_used: int = 0
    default_window: Window | None = None
    windows: tuple[Window, ...] = ()  # every window stored in the file (DICOM presets)
    voi_source: str = ""  # "voi_lut", "window", "full_range"
    inverted: bool = False  # MONOCHROME1 inversion applied
    colourfulness: float = 0.0  # mean chroma of a colour original (0 = grey); the scope check uses it
    notes: tuple[str, ...] = ()
    identifiers: Identifiers = field(default_factory=Identifiers)


@dataclass(frozen=True)
class TagRow:
    """One data element of a DICOM file, as the tag viewer shows it (plain strings)."""

    tag: str  # "(0010,0010)"
    keyword: str
    name: str
    vr: str
    value: str
    depth: int = 0
    identifying: bool = False


@dataclass(frozen=True)
class LoadedImage:
    """An image after the display pipeline.

    ``pixels``: float32 HxW in [0, 1], 0 = black, as a radiologist sees it by default
    (DICOM: modality LUT, VOI, MONOCHROME1 inversion). This is what the model sees.
    ``values``: float32 HxW in modality units (after the modality LUT, before VOI), the
    base for interactive window/level. For PNG/JPEG these are the stored gray levels.
    ``tags``: every data element of a DICOM file (pixel data summarised), read from the
    dataset the loader parsed; empty for PNG/JPEG.
    """

    pixels: np.ndarray
    values: np.ndarray
    meta: ImageMeta
    value_range: tuple[float, float] = (0.0, 1.0)
    tags: tuple[TagRow, ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]
