"""Seeded mutation fuzzing of ``engine.load_image``: seeds, mutations, oracle, worker pool.

Shared by tests/engine/test_fuzz_loader.py (a short run that must find nothing) and
bench/fuzz_loader.py (long runs that save every failing file).

* Seeds: real files: JPEGs from ../shared/data/cxr and ood-dev, a PNG from lungseg, PNG /
  JPEG variants re-encoded from a radiograph (16-bit, colour, alpha, progressive), the DICOM
  files of ../shared/data/dicom and files bundled with pydicom (every codec pydicom's
  plugins decode, big endian, deflate, palette, YBR, multi-frame, 1-bit, 32-bit).
* Cases: case ``i`` of run seed ``S`` is made from ``random.Random(f"radlens-fuzz/{S}/{i}")``
  alone, so any case can be remade from (S, i) without the ones before it (``make_case``).
  Byte mutations (bit flips, overwrites, truncation, insertion, deletion, duplication),
  structured DICOM mutations through pydicom (header values written as raw bytes, LUT
  sequences, pixel data length, encapsulated fragments, transfer syntax in the file meta)
  and structured PNG / JPEG mutations (IHDR / SOF fields with valid CRCs, chunks, segments).
* Oracle (``check_output``): ``load_image`` must return float32 2-D ``pixels`` all finite
  and in [0, 1] with finite ``values`` of the same shape, or raise a ``RadLensError``.
  Anything else is a failure: ``exception`` (another exception type), ``crash`` (the child
  died: signal or exit status), ``hang`` (over the timeout), ``bad_output``.
* Pool (``WorkerPool``): persistent child interpreters, one case at a time each, restarted
  when one dies or hangs. faulthandler is on in the children: a crash leaves its Python
  stack in the worker log, and a hung child is sent SIGUSR1 (stack dump) before SIGKILL.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DATA = REPO.parent / "shared" / "data"

DEFAULT_TARGET = "engine.io:load_image"
FAIL_CATEGORIES = ("exception", "crash", "hang", "bad_output")

# ---------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    name: str
    kind: str  # "dicom", "png" or "jpeg"
    data: bytes
    suffix: str
    weight: float = 1.0


# (file bundled with pydicom, weight): small files weigh more (cheap to decode).
PYDICOM_SEEDS: tuple[tuple[str, float], ...] = (
    ("CT_small.dcm", 3),  # signed 16-bit, rescale, explicit LE
    ("MR_small.dcm", 3),
    ("MR_small_bigendian.dcm", 2),  # explicit VR big endian
    ("MR_small_RLE.dcm", 3),  # RLE lossless
    ("MR_small_jpeg_ls_lossless.dcm", 2),  # JPEG-LS
    ("MR_small_jp2klossless.dcm", 2),  # JPEG 2000 lossless
    ("JPEG2000.dcm", 2),  # JPEG 2000
    ("JPGExtended.dcm", 2),  # JPEG extended 12-bit
    ("SC_rgb_jpeg_dcmtk.dcm", 2),  # JPEG baseline YBR_FULL
    ("SC_rgb_jpeg_gdcm.dcm", 1),  # JPEG lossless RGB
    ("GDCMJ2K_TextGBR.dcm", 1),  # JPEG 2000 YBR_RCT
    ("JPEGLSNearLossless_08.dcm", 1),  # JPEG-LS near lossless 8-bit
    ("SC_rgb_small_odd.dcm", 2),  # RGB, odd size
    ("SC_ybr_full_422_uncompressed.dcm", 2),  # YBR_FULL_422 native
    ("SC_rgb_rle_16bit.dcm", 1),  # RLE RGB 16-bit
    ("SC_rgb_rle_2frame.dcm", 1),  # RLE multi-frame
    ("examples_palette.dcm", 1),  # PALETTE COLOR
    ("rtdose.dcm", 2),  # 32-bit, 15 frames, implicit LE
    ("image_dfl.dcm", 2),  # deflated explicit LE
    ("liver_1frame.dcm", 1),  # 1-bit
    ("examples_ybr_color.dcm", 0.5),  # JPEG baseline YBR_FULL_422, 30 frames
)
# (file in ../shared/data/dicom, weight): real radiographs, larger, so lighter.
SHARED_DICOM_SEEDS: tuple[tuple[str, float], ...] = (
    ("CR-MONO1-10-chest.dcm", 1.5),  # no preamble or file meta, MONOCHROME1
    ("nccid_nih_dx.dcm", 1),  # implicit LE, 1024x1024 8-bit
    ("CR-ModalitySequenceLUT.dcm", 0.5),  # JPEG lossless + Modality LUT Sequence
    ("RG1_J2KI.dcm", 0.5),  # JPEG 2000, 1955x1841
    ("RG2_JPLY.dcm", 0.5),  # JPEG 12-bit lossy (pydicom's plugins refuse it; imagecodecs decodes it)
    ("RG3_JPLL.dcm", 0.5),  # JPEG lossless 1760x1760
)


def _first(paths: Iterable[Path]) -> Path | None:
    return next(iter(sorted(paths)), None)


def _bundled(name: str) -> Path | None:
    import pydicom.data

    path = Path(pydicom.data.__file__).parent / "test_files" / name
    return path if path.is_file() else None  # never download


def _derived_rasters(base_path: Path | None) -> list[Seed]:
    """PNG / JPEG variants the loader has separate paths for, encoded from a radiograph."""
    import cv2
    import numpy as np

    img = None
    if base_path is not None:
        img = cv2.imdecode(np.frombuffer(base_path.read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:  # no shared data: a synthetic gradient
        img = (np.add.outer(np.arange(96), np.arange(128)) % 256).astype(np.uint8)
    img = img[:160, :160]
    colour = np.dstack([img, np.roll(img, 7, axis=1), 255 - img])
    alpha = np.dstack([colour, np.linspace(0, 255, img.shape[1], dtype=np.uint8)[None, :].repeat(img.shape[0], 0)])
    out = []
    for name, arr, ext, params, weight in (
        ("gray8.png", img, ".png", [], 2),
        ("gray16.png", img.astype(np.uint16) * 257, ".png", [], 2),
        ("rgb.png", colour, ".png", [], 1),
        ("rgba.png", alpha, ".png", [], 1),
        ("rgba16.png", alpha.astype(np.uint16) * 257, ".png", [], 1),
        ("colour.jpg", colour, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90], 1),
        ("progressive.jpg", img, ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], 1),
    ):
        ok, buf = cv2.imencode(ext, arr, params)
        if ok:
            out.append(Seed(f"derived:{name}", "png" if ext == ".png" else "jpeg", buf.tobytes(), ext, weight))
    return out


def load_seeds(data_dir: Path = DATA) -> list[Seed]:
    """Every seed available here (missing shared data or pydicom files are left out)."""
    seeds: list[Seed] = []
    rasters = [
        ("cxr-normal", _first((data_dir / "cxr" / "images" / "normal").glob("*.jpg")), 2),
        ("cxr-covid", _first((data_dir / "cxr" / "images" / "covid").glob("cohen-*.jpg")), 1),
        ("cxr-pneumonia", _first((data_dir / "cxr" / "images" / "pneumonia").glob("*.jpg")), 1),
        ("ood-dev", _first((data_dir / "ood-dev" / "images").glob("*.jpg")), 1),
        ("lungseg", _first((data_dir / "lungseg" / "images").glob("*.png")), 2),
    ]
    for label, path, weight in rasters:
        if path is not None and path.is_file():
            kind = "png" if path.suffix == ".png" else "jpeg"
            seeds.append(Seed(f"{label}:{path.name}", kind, path.read_bytes(), path.suffix, weight))
    seeds += _derived_rasters(rasters[0][1])
    for name, weight in SHARED_DICOM_SEEDS:
        path = data_dir / "dicom" / name
        if path.is_file():
            seeds.append(Seed(f"shared:{name}", "dicom", path.read_bytes(), ".dcm", weight))
    for name, weight in PYDICOM_SEEDS:
        path = _bundled(name)
        if path is not None:
            seeds.append(Seed(f"pydicom:{name}", "dicom", path.read_bytes(), ".dcm", weight))
    return seeds


# ---------------------------------------------------------------------------------------
# Byte mutations
# ---------------------------------------------------------------------------------------

_INTERESTING_8 = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)
_INTERESTING_16 = (0x0000, 0x0001, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF, 0x0100, 0x1000)
_INTERESTING_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 0x00010000, 0x10000000)


def _position(rng: random.Random, n: int, hot: tuple[int, int] | None) -> int:
    if n <= 0:
        return 0
    if hot is not None and hot[1] > hot[0] and rng.random() < 0.7:
        return rng.randrange(max(0, hot[0]), min(n, hot[1])) if min(n, hot[1]) > max(0, hot[0]) else rng.randrange(n)
    return rng.randrange(n)


def mutate_bytes(data: bytes, rng: random.Random, hot: list[tuple[int, int]] | None = None) -> tuple[bytes, str]:
    """One random byte-level mutation; ``hot`` regions (headers) are hit more often."""
    buf = bytearray(data)
    n = len(buf)
    region = rng.choice(hot) if hot else None
    op = rng.choices(
        ["flip", "byte", "word", "dword", "trunc", "insert", "delete", "dup", "fill"],
        weights=[24, 14, 8, 8, 14, 10, 10, 5, 4],
    )[0]
    if n == 0:
        return bytes(rng.randbytes(rng.randint(1, 16))), "random-bytes"
    if op == "flip":
        k = rng.choice((1, 1, 2, 4, 8))
        where = []
        for _ in range(k):
            i = _position(rng, n, region)
            buf[i] ^= 1 << rng.randrange(8)
            where.append(i)
        return bytes(buf), f"bitflip@{','.join(map(str, where))}"
    if op == "byte":
        i = _position(rng, n, region)
        v = rng.choice(_INTERESTING_8) if rng.random() < 0.6 else rng.randrange(256)
        buf[i] = v
        return bytes(buf), f"byte@{i}={v:#04x}"
    if op in ("word", "dword"):
        size, vals = (2, _INTERESTING_16) if op == "word" else (4, _INTERESTING_32)
        i = min(_position(rng, n, region), max(0, n - size))
        v = rng.choice(vals)
        buf[i : i + size] = v.to_bytes(size, rng.choice(("little", "big")))
        return bytes(buf[: max(n, i + size)]), f"{op}@{i}={v:#x}"
    if op == "trunc":
        r = rng.random()
        if r < 0.4:
            cut = _position(rng, n, region)
        elif r < 0.7:
            cut = n - rng.randint(1, min(n, 64))  # just short of the end
        else:
            cut = rng.randrange(n)
        return bytes(buf[:cut]), f"truncate@{cut}/{n}"
    if op == "insert":
        i = _position(rng, n, region)
        k = rng.choice((1, 2, 3, 4, 8, 16, 64, 1000))
        blob = rng.randbytes(k) if rng.random() < 0.7 else bytes([rng.choice(_INTERESTING_8)]) * k
        buf[i:i] = blob
        return bytes(buf), f"insert@{i}+{k}"
    if op == "delete":
        i = _position(rng, n, region)
        k = rng.choice((1, 2, 3, 4, 8, 16, 64, 1000))
        del buf[i : i + k]
        return bytes(buf), f"delete@{i}-{k}"
    if op == "dup":
        i = _position(rng, n, region)
        k = rng.choice((4, 16, 64, 256, 4096))
        buf[i:i] = buf[i : i + k]
        return bytes(buf), f"duplicate@{i}x{k}"
    i = _position(rng, n, region)  # fill
    k = rng.choice((4, 16, 64, 256, 4096))
    v = rng.choice(_INTERESTING_8)
    buf[i : i + k] = bytes([v]) * len(buf[i : i + k])
    return bytes(buf), f"fill@{i}+{k}={v:#04x}"


# ---------------------------------------------------------------------------------------
# DICOM structured mutations
# ---------------------------------------------------------------------------------------

_PIXEL_TAG = 0x7FE00010
_ITEM = 0xFFFEE000
_ITEM_DELIM = 0xFFFEE00D
_SEQ_DELIM = 0xFFFEE0DD

TRANSFER_SYNTAXES: tuple[str, ...] = (
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.1.98",  # encapsulated uncompressed
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",  # HTJ2K
    "1.2.840.10008.1.2.5",  # RLE
    "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.110",  # MPEG2, HEVC, JPEG XL
    "1.2.840.10008.1.2.8.1",  # deflated image frame compression: unknown to pydicom 3.0
    "1.2.840.10008.1.2.4.94",  # JPIP referenced: no pixel data in the file
)
GARBAGE_TS: tuple[bytes, ...] = (
    b"", b"\x00\x00", b"1.2.3.4", b"garbage!", b"1.2.840.10008.1.2.4.50\x00\x00", b"1.2.840.10008.1.2 ",
    b"1.2.840.10008.1.2.1.", b"\xff\xfe\xfd\xfc", b"1" * 64, b"1." * 150, b"1.2.840.10008.1.2.4.9",
    b"1.2.840.10008.1.2.1\\1.2.840.10008.1.2",
)

DS_NASTY: tuple[str, ...] = (
    "nan", "NaN", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e39", "-1e39", "3.4e38", "-3.4e38", "0", "-0",
    "1", "0.5", "-100", "1e-300", "-1e-300", "1e-45", "abc", "", " ", "1\\2", "50\\", "\\", "+5", "1e", "0x10",
    "4096", "-4096", "65535", "2147483648", "1.7976931348623157e308", "9" * 64,
)
IS_NASTY: tuple[str, ...] = (
    "0", "-1", "1", "2", "3", "100", "65536", "99999999", "2147483648", "1e3", "2.0", "3.5", "abc", "", " ",
    "1\\2", "nan", "inf", "-0", "+2",
)
US_NASTY: tuple[int, ...] = (0, 1, 2, 3, 4, 7, 8, 9, 11, 12, 15, 16, 17, 24, 31, 32, 33, 63, 64, 255, 256, 32767,
                             32768, 65535)
PHOTOMETRICS: tuple[str, ...] = (
    "MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420",
    "YBR_ICT", "YBR_RCT", "PALETTE COLOR", "ARGB", "CMYK", "HSV", "XYB", "monochrome1", "MONOCHROME", "",
    "MONOCHROME1\\MONOCHROME2", "garbage",
)
VOI_FUNCTIONS: tuple[str, ...] = ("LINEAR", "LINEAR_EXACT", "SIGMOID", "sigmoid", "linear_exact", "FOO", "", "SIGMOID\\LINEAR")

_KW_TAGS = {
    "Rows": 0x00280010, "Columns": 0x00280011, "BitsAllocated": 0x00280100, "BitsStored": 0x00280101,
    "HighBit": 0x00280102, "PixelRepresentation": 0x00280103, "SamplesPerPixel": 0x00280002,
    "PlanarConfiguration": 0x00280006, "NumberOfFrames": 0x00280008, "PhotometricInterpretation": 0x00280004,
    "WindowCenter": 0x00281050, "WindowWidth": 0x00281051, "WindowCenterWidthExplanation": 0x00281055,
    "RescaleIntercept": 0x00281052, "RescaleSlope": 0x00281053, "RescaleType": 0x00281054,
    "VOILUTFunction": 0x00281056, "ModalityLUTSequence": 0x00283000, "VOILUTSequence": 0x00283010,
    "LUTDescriptor": 0x00283002, "LUTExplanation": 0x00283003, "ModalityLUTType": 0x00283004, "LUTData": 0x00283006,
    "SOPClassUID": 0x00080016, "Modality": 0x00080060, "PixelSpacing": 0x00280030, "ImagerPixelSpacing": 0x00181164,
    "ExtendedOffsetTable": 0x7FE00001, "ExtendedOffsetTableLengths": 0x7FE00002,
    "FloatPixelData": 0x7FE00008, "DoubleFloatPixelData": 0x7FE00009, "PixelData": 0x7FE00010,
}


@dataclass
class _Ctx:
    """What a structured DICOM mutation needs to know about the dataset being edited."""

    implicit: bool
    little: bool
    ts: str
    encapsulated: bool
    post: list[Callable[[bytes], bytes]] = field(default_factory=list)


@contextlib.contextmanager
def _lenient_pydicom() -> Iterator[None]:
    """pydicom settings that let the generator read and write anything; restored after."""
    import logging
    import warnings

    from pydicom import config

    s = config.settings
    saved = (s.reading_validation_mode, s.writing_validation_mode)
    log = logging.getLogger("pydicom")
    level = log.level
    s.reading_validation_mode = config.IGNORE
    s.writing_validation_mode = config.IGNORE
    log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        s.reading_validation_mode, s.writing_validation_mode = saved
        log.setLevel(level)


_PARSED: dict[str, Any] = {}


def _parsed_seed(seed: Seed) -> Any:
    """The seed's dataset, read once (with force: some seeds have no file meta)."""
    import pydicom

    ds = _PARSED.get(seed.name)
    if ds is None:
        ds = pydicom.dcmread(io.BytesIO(seed.data), force=True)
        _PARSED[seed.name] = ds
    return ds


def _raw(tag: int, vr: str, value: bytes, ctx: _Ctx, undefined: bool = False) -> Any:
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    return RawDataElement(Tag(tag), vr, 0xFFFFFFFF if undefined else len(value), value, 0, ctx.implicit, ctx.little)


def _put(ds: Any, tag: int, vr: str, value: bytes, ctx: _Ctx, undefined: bool = False) -> None:
    """Store ``value`` verbatim (pydicom writes raw elements as they are)."""
    from pydicom.tag import Tag

    if not undefined and not ctx.implicit and len(value) > 0xFFFE and vr not in ("OB", "OW", "OF", "OD", "OL", "UN", "UT", "UC", "UR", "SQ", "OV"):
        vr = "UN"  # a 2-byte length cannot hold it
    ds._dict[Tag(tag)] = _raw(tag, vr, value, ctx, undefined)


def _text(s: str, rng: random.Random) -> bytes:
    b = s.encode("latin-1", "replace")
    if len(b) % 2 and rng.random() < 0.9:
        b += b" "
    return b


def _us(values: Iterable[int], ctx: _Ctx, signed: bool = False) -> bytes:
    fmt = ("<" if ctx.little else ">") + ("h" if signed else "H")
    out = b""
    for v in values:
        v = int(v)
        out += struct.pack(fmt, (v + 32768) % 65536 - 32768 if signed else v % 65536)
    return out


def _get_int(ds: Any, keyword: str, default: int) -> int:
    try:
        v = ds.get(keyword)
        return int(v) if v not in (None, "") else default
    except Exception:  # noqa: BLE001
        return default


def _pixel_bytes(ds: Any) -> bytes | None:
    try:
        elem = ds.get_item(_PIXEL_TAG) if _PIXEL_TAG in ds else None
        if elem is None:
            return None
        v = elem.value
        return bytes(v) if isinstance(v, (bytes, bytearray)) else None
    except Exception:  # noqa: BLE001
        return None


def _op_us(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    kw = rng.choice(("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                     "SamplesPerPixel", "PlanarConfiguration", "BitsAllocated", "BitsStored", "Rows", "Columns"))
    cur = _get_int(ds, kw, 0)
    r = rng.random()
    if r < 0.55:
        v = rng.choice(US_NASTY)
    elif r < 0.8:
        v = rng.choice((cur + 1, cur - 1, cur * 2, cur // 2, cur * 3, cur + 8, cur - 8))
    else:
        v = None
    tag = _KW_TAGS[kw]
    if v is not None:
        _put(ds, tag, "US", _us([v], ctx), ctx)
        return f"{kw}={v}"
    form = rng.choice(("empty", "1byte", "2values", "SS", "string"))
    if form == "empty":
        _put(ds, tag, "US", b"", ctx)
    elif form == "1byte":
        _put(ds, tag, "US", bytes([rng.randrange(256)]), ctx)
    elif form == "2values":
        _put(ds, tag, "US", _us([rng.choice(US_NASTY), rng.choice(US_NASTY)], ctx), ctx)
    elif form == "SS":
        _put(ds, tag, "SS", _us([rng.choice((-1, -8, -32768, 16))], ctx, signed=True), ctx)
    else:
        s = rng.choice(IS_NASTY)
        _put(ds, tag, rng.choice(("IS", "LO", "UN")), _text(s, rng), ctx)
        return f"{kw}=<{form} {s!r}>"
    return f"{kw}=<{form}>"


def _op_frames(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    cur = _get_int(ds, "NumberOfFrames", 1)
    s = rng.choice(IS_NASTY + (str(cur + 1), str(cur - 1), str(cur * 2), str(cur + 100)))
    _put(ds, _KW_TAGS["NumberOfFrames"], "IS", _text(s, rng), ctx)
    return f"NumberOfFrames={s!r}"


def _op_photometric(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    s = rng.choice(PHOTOMETRICS)
    _put(ds, _KW_TAGS["PhotometricInterpretation"], "CS", _text(s, rng), ctx)
    extra = ""
    if rng.random() < 0.3:
        spp = rng.choice((1, 3, 4, 0, 2))
        _put(ds, _KW_TAGS["SamplesPerPixel"], "US", _us([spp], ctx), ctx)
        extra = f",SamplesPerPixel={spp}"
    return f"PhotometricInterpretation={s!r}{extra}"


def _ds_value(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.6:
        return rng.choice(DS_NASTY)
    if r < 0.8:
        return repr(rng.uniform(-70000, 70000))[:16]
    if r < 0.9:
        n = rng.choice((3, 50, 1000, 20000))
        return "\\".join(rng.choice(DS_NASTY[:20]) if rng.random() < 0.3 else str(rng.randint(-5000, 5000)) for _ in range(n))
    return rng.choice(("-2.5e307", "7e-310", "1" * 16, ".5", "5.", "1e+0400"))


def _op_window(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    parts = []
    for kw in ("WindowCenter", "WindowWidth"):
        if rng.random() < 0.75:
            s = _ds_value(rng)
            _put(ds, _KW_TAGS[kw], "DS", _text(s, rng), ctx)
            parts.append(f"{kw}={s[:40]!r}")
        elif rng.random() < 0.3 and _KW_TAGS[kw] in ds:
            del ds[_KW_TAGS[kw]]
            parts.append(f"-{kw}")
    if rng.random() < 0.2:
        s = rng.choice(("", "A\\B\\C", "x" * 64, "\\" * 10))
        _put(ds, _KW_TAGS["WindowCenterWidthExplanation"], "LO", _text(s, rng), ctx)
        parts.append("explanation")
    if rng.random() < 0.3:
        s = rng.choice(VOI_FUNCTIONS)
        _put(ds, _KW_TAGS["VOILUTFunction"], "CS", _text(s, rng), ctx)
        parts.append(f"VOILUTFunction={s!r}")
    return "window:" + ",".join(parts or ["none"])


def _op_rescale(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    parts = []
    slopes = ("0", "-1", "1e308", "-1e308", "1e39", "nan", "inf", "1e-45", "1e-320", "abc", "", "2\\3", "65536", "0.0001", "1e20")
    inters = ("0", "-1024", "1e308", "-1e308", "nan", "inf", "-inf", "1e39", "-3.5e38", "abc", "", "1\\2", "3e38")
    if rng.random() < 0.8:
        s = rng.choice(slopes)
        _put(ds, _KW_TAGS["RescaleSlope"], "DS", _text(s, rng), ctx)
        parts.append(f"RescaleSlope={s!r}")
    if rng.random() < 0.6:
        s = rng.choice(inters)
        _put(ds, _KW_TAGS["RescaleIntercept"], "DS", _text(s, rng), ctx)
        parts.append(f"RescaleIntercept={s!r}")
    if rng.random() < 0.15:
        kw = rng.choice(("RescaleSlope", "RescaleIntercept"))
        if _KW_TAGS[kw] in ds:
            del ds[_KW_TAGS[kw]]
            parts.append(f"-{kw}")
    return "rescale:" + ",".join(parts or ["none"])


def _op_voifn(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    s = rng.choice(VOI_FUNCTIONS)
    _put(ds, _KW_TAGS["VOILUTFunction"], "CS", _text(s, rng), ctx)
    if "WindowCenter" not in ds or rng.random() < 0.5:
        c, w = _ds_value(rng), _ds_value(rng)
        _put(ds, _KW_TAGS["WindowCenter"], "DS", _text(c, rng), ctx)
        _put(ds, _KW_TAGS["WindowWidth"], "DS", _text(w, rng), ctx)
        return f"VOILUTFunction={s!r},WindowCenter={c[:30]!r},WindowWidth={w[:30]!r}"
    return f"VOILUTFunction={s!r}"


def _lut_item(rng: random.Random, ctx: _Ctx, modality: bool) -> tuple[Any, str]:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.set_original_encoding(ctx.implicit, ctx.little, None)
    entries = rng.choice((0, 1, 2, 255, 256, 257, 4096, 65535, rng.randint(1, 70000)))
    first = rng.choice((0, -1, -32768, 32767, 65535, -2048, 1024, rng.randint(-40000, 70000)))
    bits = rng.choice((8, 12, 16, 16, 0, 1, 7, 17, 32, 255))
    desc_vr = rng.choice(("US", "SS"))
    n_desc = rng.choice((3, 3, 3, 3, 2, 4, 0))
    desc = [entries, first, bits, 0][:n_desc]
    desc_note = f"desc={desc}/{desc_vr}"
    if rng.random() < 0.08:
        _put(item, _KW_TAGS["LUTDescriptor"], "LO", _text(rng.choice(("a\\b\\c", "256\\0", "nan\\0\\16")), rng), ctx)
        desc_note = "desc=<text>"
    elif rng.random() < 0.95:
        _put(item, _KW_TAGS["LUTDescriptor"], desc_vr, _us(desc, ctx, signed=desc_vr == "SS"), ctx)
    else:
        desc_note = "desc=<missing>"
    true_entries = entries % 65536 or 65536
    n = rng.choice((true_entries, true_entries, true_entries - 1, true_entries + 1, 0, 1, true_entries * 2,
                    (true_entries + 1) // 2))
    n = max(0, min(n, 140000))
    top = (1 << min(max(bits, 1), 16)) - 1 if rng.random() < 0.8 else 65535
    style = rng.choice(("ramp", "ramp", "random", "const", "inverse"))
    import numpy as np

    ramp = np.arange(n, dtype=np.int64) * top // max(n - 1, 1)
    if style == "ramp":
        vals = np.minimum(ramp, top)
    elif style == "inverse":
        vals = top - np.minimum(ramp, top)
    elif style == "const":
        vals = np.full(n, rng.choice((0, top)), dtype=np.int64)
    else:
        vals = np.frombuffer(rng.randbytes(2 * n), dtype="<u2").astype(np.int64) % (top + 1)
    words = vals.astype("<u2" if ctx.little else ">u2").tobytes()
    data_form = rng.choice(("OW", "OW", "US", "8bit", "missing", "odd"))
    if data_form == "OW":
        _put(item, _KW_TAGS["LUTData"], "OW", words, ctx)
    elif data_form == "US":
        _put(item, _KW_TAGS["LUTData"], "US", words, ctx)
    elif data_form == "8bit":
        _put(item, _KW_TAGS["LUTData"], "OW", (vals & 0xFF).astype(np.uint8).tobytes() + (b"\x00" if n % 2 else b""), ctx)
    elif data_form == "odd":
        _put(item, _KW_TAGS["LUTData"], "OW", words + b"\x01", ctx)
    if modality and rng.random() < 0.7:
        _put(item, _KW_TAGS["ModalityLUTType"], "LO", _text(rng.choice(("HU", "US", "OD", "", "MGML")), rng), ctx)
    if rng.random() < 0.3:
        _put(item, _KW_TAGS["LUTExplanation"], "LO", _text("fuzz", rng), ctx)
    return item, f"{desc_note},data={data_form}x{n}/{style}"


def _op_lut_sequence(ds: Any, rng: random.Random, ctx: _Ctx, keyword: str) -> str:
    from pydicom.dataelem import DataElement
    from pydicom.sequence import Sequence

    r = rng.random()
    if r < 0.08:
        items, note = [], "empty"
    else:
        count = rng.choice((1, 1, 1, 2, 3))
        made = [_lut_item(rng, ctx, keyword == "ModalityLUTSequence") for _ in range(count)]
        items, note = [m[0] for m in made], ";".join(m[1] for m in made)
    ds[_KW_TAGS[keyword]] = DataElement(_KW_TAGS[keyword], "SQ", Sequence(items))
    if keyword == "ModalityLUTSequence" and rng.random() < 0.3:  # both stages present
        _put(ds, _KW_TAGS["RescaleSlope"], "DS", b"1 ", ctx)
        _put(ds, _KW_TAGS["RescaleIntercept"], "DS", b"0 ", ctx)
    return f"{keyword}[{note}]"


def _op_voilut(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    return _op_lut_sequence(ds, rng, ctx, "VOILUTSequence")


def _op_modlut(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    return _op_lut_sequence(ds, rng, ctx, "ModalityLUTSequence")


def _op_palette(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    notes = []
    if str(ds.get("PhotometricInterpretation", "")) != "PALETTE COLOR" or rng.random() < 0.2:
        _put(ds, _KW_TAGS["PhotometricInterpretation"], "CS", b"PALETTE COLOR ", ctx)
        notes.append("->PALETTE COLOR")
        if rng.random() < 0.5:
            _put(ds, _KW_TAGS["SamplesPerPixel"], "US", _us([1], ctx), ctx)
    for color, desc_tag, data_tag in (("R", 0x00281101, 0x00281201), ("G", 0x00281102, 0x00281202),
                                      ("B", 0x00281103, 0x00281203)):
        if rng.random() < 0.6:
            entries = rng.choice((0, 1, 2, 255, 256, 4096, 65535))
            first = rng.choice((0, 1, 128, 65535, 32768))
            bits = rng.choice((8, 16, 0, 1, 12, 32))
            vr = rng.choice(("US", "SS"))
            _put(ds, desc_tag, vr, _us([entries, first, bits], ctx, signed=vr == "SS"), ctx)
            notes.append(f"{color}desc=[{entries},{first},{bits}]")
        if rng.random() < 0.5:
            k = rng.choice((0, 1, 2, 255, 256, 257, 512, 8192, 131072))
            _put(ds, data_tag, "OW", rng.randbytes(k), ctx)
            notes.append(f"{color}data={k}B")
    if rng.random() < 0.1:
        _put(ds, 0x00281221, "OW", rng.randbytes(rng.choice((0, 6, 64))), ctx)  # segmented red
        notes.append("segmented")
    return "palette:" + ",".join(notes or ["none"])


def _op_pixlen(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    if ctx.encapsulated and rng.random() < 0.7:
        return _op_frag(ds, rng, ctx)
    data = _pixel_bytes(ds)
    if data is None:
        return "pixlen:<no pixel data>"
    n = len(data)
    new = rng.choice((0, 1, 2, n - 1, n - 2, n // 2, n // 3, n + 1, n + 2, n * 2, n + 4096, max(0, n - rng.randint(1, 999))))
    value = data[:new] if new <= n else data + rng.randbytes(new - n)
    if ctx.encapsulated:
        _put(ds, _PIXEL_TAG, "OB", value, ctx)  # encapsulated bytes stored with a defined length
        return f"PixelData(encapsulated->defined length)={new}/{n}"
    _put(ds, _PIXEL_TAG, rng.choice(("OW", "OB")), value, ctx)
    return f"PixelData length={new}/{n}"


def _items(value: bytes) -> list[tuple[int, bytes]] | None:
    """Items of an encapsulated Pixel Data value (little endian), or None if unparseable."""
    out, i = [], 0
    while i + 8 <= len(value):
        tag = (struct.unpack("<H", value[i : i + 2])[0] << 16) | struct.unpack("<H", value[i + 2 : i + 4])[0]
        (length,) = struct.unpack("<I", value[i + 4 : i + 8])
        if tag != _ITEM or length == 0xFFFFFFFF or i + 8 + length > len(value):
            return None
        out.append((tag, value[i + 8 : i + 8 + length]))
        i += 8 + length
    return out if i == len(value) else None


def _item(data: bytes, length: int | None = None, tag: int = _ITEM) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(data) if length is None else length) + data


def _op_frag(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    value = _pixel_bytes(ds)
    items = _items(value) if value is not None and ctx.encapsulated else None
    if not items:
        return _op_pixlen(ds, rng, _Ctx(ctx.implicit, ctx.little, ctx.ts, False, ctx.post)) if value else "frag:<none>"
    bot, frags = items[0][1], [f for _, f in items[1:]]
    op = rng.choice(("trunc", "trunc_nofix", "len", "drop", "dup", "swap", "empty", "random", "bot", "nofrags",
                     "nobot", "flip", "flip", "flip_head", "flip_head", "split", "delim", "rle"))
    k = rng.randrange(len(frags)) if frags else 0
    raw_tail = b""
    lengths: dict[int, int] = {}
    note = op
    if op == "trunc" and frags:
        m = rng.choice((0, 1, 2, 10, len(frags[k]) // 2, len(frags[k]) - 1, max(0, len(frags[k]) - 2)))
        frags[k] = frags[k][:m]
        note = f"fragment {k} cut to {m}"
    elif op == "trunc_nofix" and frags:
        m = rng.randrange(len(frags[k]) + 1)
        lengths[k] = len(frags[k])
        frags[k] = frags[k][:m]
        note = f"fragment {k} cut to {m}, length field kept"
    elif op == "len" and frags:
        lengths[k] = rng.choice((0, 1, len(frags[k]) + 1, len(frags[k]) - 1, len(frags[k]) + 1000, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFFE))
        note = f"fragment {k} length field={lengths[k]:#x}"
    elif op == "drop" and frags:
        del frags[k]
        note = f"fragment {k} dropped"
    elif op == "dup" and frags:
        frags.insert(k, frags[k])
        note = f"fragment {k} duplicated"
    elif op == "swap" and len(frags) > 1:
        frags.reverse()
        note = "fragments reversed"
    elif op == "empty":
        frags.insert(k, b"")
        note = f"empty fragment at {k}"
    elif op == "random":
        frags.insert(k, rng.randbytes(rng.choice((2, 16, 1024))))
        note = f"random fragment at {k}"
    elif op == "bot":
        nb = rng.choice((1, 2, 3, 16))
        bot = b"".join(struct.pack("<I", rng.choice((0, 1, 2, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(2**32)))) for _ in range(nb))
        if rng.random() < 0.3:
            bot += b"\x01"
        note = f"basic offset table garbage ({len(bot)} bytes)"
    elif op == "nofrags":
        frags = []
    elif op == "nobot":
        bot = None
    elif op in ("flip", "flip_head") and frags:
        f = bytearray(frags[k])
        span = len(f) if op == "flip" else min(len(f), 256)
        for _ in range(rng.choice((1, 2, 4, 16))):
            if span:
                f[rng.randrange(span)] ^= 1 << rng.randrange(8)
        if op == "flip_head" and span and rng.random() < 0.5:
            i = rng.randrange(span)
            f[i : i + 2] = rng.choice((b"\xff\xff", b"\x00\x00", b"\xff\xd9", b"\xff\xda", b"\xff\x4f"))
        frags[k] = bytes(f)
        note = f"{op} in fragment {k}"
    elif op == "split" and frags:
        f = frags[k]
        cut = rng.randrange(len(f) + 1)
        frags[k : k + 1] = [f[:cut], f[cut:]]
        note = f"fragment {k} split at {cut}"
    elif op == "delim":
        raw_tail = _item(b"", 0, rng.choice((_SEQ_DELIM, _ITEM_DELIM, 0x00080016)))
        note = "stray delimiter inside the sequence"
    elif op == "rle" and frags and ctx.ts == "1.2.840.10008.1.2.5":
        f = bytearray(frags[k])
        hdr = [struct.unpack("<I", f[i : i + 4])[0] for i in range(0, min(64, len(f)) - 3, 4)]
        which = rng.choice(("count", "offset", "both"))
        if which in ("count", "both") and len(f) >= 4:
            f[0:4] = struct.pack("<I", rng.choice((0, 1, 2, 3, 4, 15, 16, 255, 0xFFFFFFFF)))
        if which in ("offset", "both") and len(f) >= 64:
            j = rng.randrange(1, 16)
            f[4 * j : 4 * j + 4] = struct.pack("<I", rng.choice((0, 1, 63, 64, len(f), len(f) + 100, 0xFFFFFFFF, hdr[0] if hdr else 0)))
        frags[k] = bytes(f)
        note = f"RLE header {which}"
    else:
        f = bytearray(frags[k]) if frags else bytearray()
        if f:
            f[rng.randrange(len(f))] ^= 0xFF
            frags[k] = bytes(f)
        note = f"byte inverted in fragment {k}"
    out = b"" if bot is None else _item(bot)
    for i, f in enumerate(frags):
        out += _item(f, lengths.get(i))
    out += raw_tail
    _put(ds, _PIXEL_TAG, "OB", out, ctx, undefined=True)
    if rng.random() < 0.1:
        ctx.post.append(_strip_sequence_delimiter)
        note += ", no sequence delimiter"
    return f"frag:{note}"


def _strip_sequence_delimiter(data: bytes) -> bytes:
    tail = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    return data[: -len(tail)] if data.endswith(tail) else data


def _op_delete(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    kw = rng.choice(("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                     "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames",
                     "PixelData", "WindowWidth", "WindowCenter", "RescaleSlope", "RescaleIntercept", "SOPClassUID"))
    tag = _KW_TAGS[kw]
    if tag in ds:
        del ds[tag]
        return f"-{kw}"
    return f"-{kw}(absent)"


def _op_pixkw(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    data = _pixel_bytes(ds) or b""
    kw, vr, size = rng.choice((("FloatPixelData", "OF", 4), ("DoubleFloatPixelData", "OD", 8)))
    if rng.random() < 0.7:
        data = data[: len(data) // size * size]
    if rng.random() < 0.5:
        import numpy as np

        vals = np.frombuffer(data[: len(data) // size * size], dtype=np.float32 if size == 4 else np.float64).copy()
        if vals.size:
            vals[rng.randrange(vals.size)] = rng.choice((float("nan"), float("inf"), -float("inf"), 1e30))
        data = vals.astype(("<" if ctx.little else ">") + ("f4" if size == 4 else "f8")).tobytes()
    _put(ds, _KW_TAGS[kw], vr, data, ctx)
    note = f"{kw} ({len(data)} bytes)"
    if rng.random() < 0.8 and _PIXEL_TAG in ds:
        del ds[_PIXEL_TAG]
        note += ", PixelData removed"
    if rng.random() < 0.6:
        _put(ds, _KW_TAGS["BitsAllocated"], "US", _us([size * 8], ctx), ctx)
        note += f", BitsAllocated={size * 8}"
    return note


def _op_rawelem(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    tags = [t for t in ds.keys() if t >> 16 not in (0x0002, 0x7FE0, 0xFFFE)]
    if not tags:
        return "rawelem:<none>"
    tag = rng.choice(tags)
    try:
        elem = ds.get_item(tag)
        vr = str(elem.VR) if elem.VR and len(str(elem.VR)) == 2 else "UN"
        old = elem.value if isinstance(elem.value, (bytes, bytearray)) else None
    except Exception:  # noqa: BLE001
        vr, old = "UN", None
    if vr == "SQ":
        vr = "UN"
    if old and rng.random() < 0.5:
        b = bytearray(old)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        value = bytes(b)
    else:
        value = rng.randbytes(rng.choice((0, 1, 2, 3, 4, 8, 16, 64)))
    _put(ds, tag, vr if rng.random() < 0.8 else rng.choice(("UN", "OB", "LO", "US", "DS")), value, ctx)
    return f"raw value of ({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} ({len(value)} bytes)"


def _op_swapdims(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    rows, cols = _get_int(ds, "Rows", 0), _get_int(ds, "Columns", 0)
    choice = rng.choice(("swap", "flat", "half"))
    if choice == "swap":
        r, c = cols, rows
    elif choice == "flat":
        r, c = 1, rows * cols
    else:
        r, c = rows * 2, max(cols // 2, 1)
    _put(ds, _KW_TAGS["Rows"], "US", _us([r], ctx), ctx)
    _put(ds, _KW_TAGS["Columns"], "US", _us([c], ctx), ctx)
    return f"dims {rows}x{cols}->{r}x{c}"


def _op_ts(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    r = rng.random()
    if r < 0.6:
        uid: bytes | None = rng.choice(TRANSFER_SYNTAXES).encode()
    elif r < 0.92:
        uid = rng.choice(GARBAGE_TS)
    else:
        uid = None
    if r > 0.97:
        ctx.post.append(_drop_file_meta)
        return "file meta removed"
    ctx.post.append(lambda data: _patch_transfer_syntax(data, uid))
    return "TransferSyntaxUID=" + ("<removed>" if uid is None else repr(uid.decode("latin-1"))[:60])


def _op_eot(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    n = rng.choice((0, 1, 2, 8))
    offs = b"".join(struct.pack("<Q" if ctx.little else ">Q", rng.choice((0, 1, 2**63, 2**64 - 1, rng.randrange(2**20)))) for _ in range(n))
    _put(ds, _KW_TAGS["ExtendedOffsetTable"], "OV", offs, ctx)
    if rng.random() < 0.7:
        lens = b"".join(struct.pack("<Q" if ctx.little else ">Q", rng.choice((0, 1, 2**63, rng.randrange(2**20)))) for _ in range(rng.choice((0, n, n + 1))))
        _put(ds, _KW_TAGS["ExtendedOffsetTableLengths"], "OV", lens, ctx)
    return f"extended offset table ({n} entries)"


def _op_nest(ds: Any, rng: random.Random, ctx: _Ctx) -> str:
    """A private sequence nested ``depth`` deep (recursion in the parser)."""
    depth = rng.choice((100, 1000, 5000))
    e = "<" if ctx.little else ">"
    tag = struct.pack(e + "HH", 0x0009, 0x1000)
    head = tag + (b"" if ctx.implicit else b"SQ\x00\x00") + struct.pack(e + "I", 0xFFFFFFFF)
    item_start = struct.pack(e + "HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    item_end = struct.pack(e + "HHI", 0xFFFE, 0xE00D, 0)
    seq_end = struct.pack(e + "HHI", 0xFFFE, 0xE0DD, 0)
    value = (item_start + head) * depth + (seq_end + item_end) * depth
    _put(ds, 0x00090010, "LO", b"FUZZ", ctx)
    _put(ds, 0x00091000, "SQ", value, ctx, undefined=True)
    return f"private sequence nested {depth} deep"


_DICOM_OPS: tuple[tuple[Callable[[Any, random.Random, _Ctx], str], float], ...] = (
    (_op_us, 14), (_op_frames, 5), (_op_photometric, 7), (_op_ts, 8), (_op_window, 9), (_op_rescale, 7),
    (_op_voifn, 4), (_op_voilut, 7), (_op_modlut, 7), (_op_palette, 4), (_op_pixlen, 7), (_op_frag, 10),
    (_op_delete, 6), (_op_pixkw, 2), (_op_rawelem, 5), (_op_swapdims, 2), (_op_eot, 1), (_op_nest, 1),
)


def _meta_elements(data: bytes) -> tuple[list[tuple[int, bytes, bytes]], int] | None:
    """(tag, VR, value) of the file meta group after a 'DICM' prefix, and where it ends."""
    if data[128:132] != b"DICM":
        return None
    i, out = 132, []
    while i + 8 <= len(data):
        group, elem = struct.unpack("<HH", data[i : i + 4])
        if group != 0x0002:
            break
        vr = data[i + 4 : i + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"):
            (length,) = struct.unpack("<I", data[i + 8 : i + 12])
            start = i + 12
        else:
            (length,) = struct.unpack("<H", data[i + 6 : i + 8])
            start = i + 8
        if length == 0xFFFFFFFF or start + length > len(data):
            return None
        out.append(((group << 16) | elem, vr, data[start : start + length]))
        i = start + length
    return out, i


def _encode_meta(elements: list[tuple[int, bytes, bytes]]) -> bytes:
    body = b""
    for tag, vr, value in elements:
        if tag == 0x00020000:
            continue
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"):
            body += struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + b"\x00\x00" + struct.pack("<I", len(value)) + value
        else:
            body += struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + struct.pack("<H", len(value)) + value
    return struct.pack("<HH", 2, 0) + b"UL" + struct.pack("<HI", 4, len(body)) + body


def _patch_transfer_syntax(data: bytes, uid: bytes | None) -> bytes:
    """Rewrite (0002,0010) in the file meta (adding a file meta when there is none)."""
    parsed = _meta_elements(data)
    if parsed is None:  # no file meta: add one in front of the raw dataset
        elements: list[tuple[int, bytes, bytes]] = [(0x00020001, b"OB", b"\x00\x01")]
        body = data
    else:
        elements, end = parsed
        body = data[end:]
    elements = [e for e in elements if e[0] != 0x00020010]
    if uid is not None:
        elements.append((0x00020010, b"UI", uid + (b"\x00" if len(uid) % 2 else b"")))
        elements.sort(key=lambda e: e[0])
    return b"\x00" * 128 + b"DICM" + _encode_meta(elements) + body


def _drop_file_meta(data: bytes) -> bytes:
    parsed = _meta_elements(data)
    return data if parsed is None else data[parsed[1] :]


def _write_dicom(ds: Any) -> bytes:
    import pydicom

    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=False)
    return buf.getvalue()


def _dicom_hot(data: bytes) -> list[tuple[int, int]]:
    """Header bytes, and the first bytes of the pixel data (item headers, codec headers)."""
    pos = max(data.rfind(b"\xe0\x7f\x10\x00"), data.rfind(b"\x7f\xe0\x00\x10"))
    if pos <= 0:
        return [(0, min(len(data), 4096))]
    return [(0, pos + 12), (0, pos + 12), (pos, min(len(data), pos + 512))]


def _dicom_structured(seed: Seed, rng: random.Random) -> tuple[bytes, list[str]]:
    ds = copy.deepcopy(_parsed_seed(seed))
    meta = getattr(ds, "file_meta", None)
    ts = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else ""
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = True, True
    encapsulated = False
    with contextlib.suppress(Exception):
        encapsulated = ds.get_item(_PIXEL_TAG) is not None and (_pixel_bytes(ds) or b"")[:4] == b"\xfe\xff\x00\xe0"
    ctx = _Ctx(implicit=bool(implicit), little=bool(little), ts=ts, encapsulated=encapsulated)
    ops = []
    fns, weights = zip(*_DICOM_OPS, strict=True)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        fn = rng.choices(fns, weights=weights)[0]
        ops.append(fn(ds, rng, ctx))
    data = _write_dicom(ds)
    for post in ctx.post:
        data = post(data)
    return data, ops


# ---------------------------------------------------------------------------------------
# PNG / JPEG structured mutations
# ---------------------------------------------------------------------------------------

_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _png_chunks(data: bytes) -> list[list[bytes]] | None:
    if not data.startswith(_PNG_SIG):
        return None
    i, out = 8, []
    while i + 12 <= len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        ctype = data[i + 4 : i + 8]
        out.append([ctype, data[i + 8 : i + 8 + n]])
        i += 12 + n
        if ctype == b"IEND":
            break
    return out


def _png_chunk(ctype: bytes, body: bytes, length: int | None = None, crc: int | None = None) -> bytes:
    c = zlib.crc32(ctype + body) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(body) if length is None else length) + ctype + body + struct.pack(">I", c)


def _png_structured(data: bytes, rng: random.Random, heavy: bool = True) -> tuple[bytes, str]:
    chunks = _png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        return mutate_bytes(data, rng)
    w, h, depth, ctype, comp, filt, inter = struct.unpack(">IIBBBBB", chunks[0][1])
    op = rng.choice(("ihdr", "ihdr", "ihdr", "idat_flip", "idat_flip", "idat_trunc", "idat_split", "drop", "dup_ihdr",
                     "badlen", "add", "add", "bomb"))
    special: dict[int, tuple[int | None, int | None]] = {}
    note = op
    if op == "ihdr":
        field_ = rng.choice(("w", "h", "depth", "ctype", "comp", "filt", "inter", "wh"))
        big = (0, 1, 2, 3, 65535, 65536, 100000, 2**31 - 1, 2**31, 2**32 - 1)
        if field_ in ("w", "wh"):
            w = rng.choice(big + (w * 2, w // 2, w + 1))
        if field_ in ("h", "wh"):
            h = rng.choice(big + (h * 2, h // 2, h + 1))
        if field_ == "depth":
            depth = rng.choice((0, 1, 2, 4, 8, 16, 3, 255))
        if field_ == "ctype":
            ctype = rng.choice((0, 2, 3, 4, 6, 1, 5, 7, 255))
        if field_ == "comp":
            comp = rng.choice((1, 255))
        if field_ == "filt":
            filt = rng.choice((1, 255))
        if field_ == "inter":
            inter = rng.choice((1, 2, 255))
        w, h = w % 2**32, h % 2**32
        chunks[0][1] = struct.pack(">IIBBBBB", w, h, depth, ctype, comp, filt, inter)
        note = f"IHDR {w}x{h} depth={depth} colour={ctype} comp={comp} filter={filt} interlace={inter}"
    elif op in ("idat_flip", "idat_trunc", "idat_split"):
        idx = [i for i, c in enumerate(chunks) if c[0] == b"IDAT"]
        if idx:
            j = rng.choice(idx)
            body = bytearray(chunks[j][1])
            if op == "idat_flip" and body:
                for _ in range(rng.choice((1, 2, 8))):
                    body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
                if rng.random() < 0.3 and len(body) > 2:
                    body[0:2] = rng.choice((b"\x78\x01", b"\x00\x00", b"\xff\xff", b"\x78\x9c"))
            elif op == "idat_trunc":
                body = body[: rng.randrange(len(body) + 1)]
            else:
                parts = [bytes(body[i : i + 7]) for i in range(0, len(body), 7)][:4000]
                chunks[j : j + 1] = [[b"IDAT", p] for p in parts] + ([[b"IDAT", b""]] if rng.random() < 0.5 else [])
                note = "IDAT split"
                body = None
            if body is not None:
                chunks[j][1] = bytes(body)
    elif op == "drop":
        j = rng.randrange(len(chunks))
        note = f"drop {chunks[j][0].decode('latin-1')}"
        del chunks[j]
    elif op == "dup_ihdr":
        chunks.insert(1, list(chunks[0]))
    elif op == "badlen":
        j = rng.randrange(len(chunks))
        special[j] = (rng.choice((0, 1, 2**31 - 1, 2**32 - 1, len(chunks[j][1]) + 1)), None)
        note = f"length field of {chunks[j][0].decode('latin-1')} = {special[j][0]}"
    elif op == "add":
        kind = rng.choice(("PLTE", "tRNS", "gAMA", "iCCP", "sBIT", "zTXt", "eXIf", "huge"))
        if kind == "PLTE":
            body = rng.randbytes(3 * rng.choice((0, 1, 2, 256, 257)))
        elif kind == "tRNS":
            body = rng.randbytes(rng.choice((0, 1, 2, 6, 256, 300)))
        elif kind == "gAMA":
            body = struct.pack(">I", rng.choice((0, 1, 45455, 2**32 - 1)))
        elif kind == "iCCP":
            body = b"fuzz\x00\x00" + rng.choice((zlib.compress(rng.randbytes(200)), rng.randbytes(64), zlib.compress(b"\x00" * 10**6)))
        elif kind == "sBIT":
            body = bytes([rng.choice((0, 1, 8, 16, 255)) for _ in range(rng.choice((1, 3, 4)))])
        elif kind == "zTXt":
            body = b"k\x00\x00" + zlib.compress(b"A" * 10**6)
        elif kind == "eXIf":
            body = rng.choice((b"MM\x00*\x00\x00\x00\x08", b"II*\x00\xff\xff\xff\xff")) + rng.randbytes(32)
        else:
            body = rng.randbytes(16)
            special[1] = (2**31 - 1, None)
        chunks.insert(1, [b"PLTE" if kind == "PLTE" else kind.encode() if kind != "huge" else b"fuZz", body])
        note = f"add {kind}"
        if kind == "PLTE" and rng.random() < 0.5:
            chunks[0][1] = struct.pack(">IIBBBBB", w, h, 8, 3, comp, filt, inter)
            note += " + colour type 3"
    else:  # bomb: a valid, highly compressed image; heavy: up to the 100 MP limit
        sizes = [(10000, 10001), (30000, 30000), (100000, 1001), (4000, 4000), (100000, 1)]
        if heavy:
            sizes += [(9000, 11000), (10000, 10000), (20000, 4999)]
        bw, bh = rng.choice(sizes)
        bdepth, bctype = rng.choice(((8, 0), (16, 0), (8, 2), (1, 0)))
        bpp = {0: 1, 2: 3}[bctype] * bdepth
        row = b"\x00" + b"\x00" * ((bw * bpp + 7) // 8)
        if bw * bh <= 100_000_000:
            z = zlib.compressobj(9)
            stream = b"".join(z.compress(row) for _ in range(bh)) + z.flush()
        else:
            stream = zlib.compress(row * 4)  # the check on dimensions must stop it before decoding
        chunks = [[b"IHDR", struct.pack(">IIBBBBB", bw, bh, bdepth, bctype, 0, 0, 0)], [b"IDAT", stream], [b"IEND", b""]]
        note = f"bomb {bw}x{bh} depth={bdepth} colour={bctype}"
    out = _PNG_SIG
    for i, (ctype_, body) in enumerate(chunks):
        length, crc = special.get(i, (None, None))
        out += _png_chunk(ctype_, body, length, crc)
    return out, f"png:{note}"


def _jpeg_segments(data: bytes) -> tuple[list[list[Any]], bytes] | None:
    """[marker, payload] segments up to and including the first SOS, and the rest."""
    if not data.startswith(b"\xff\xd8"):
        return None
    i, segs = 2, []
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        segs.append([marker, data[i + 4 : i + 2 + length]])
        i += 2 + length
        if marker == 0xDA:
            return segs, data[i:]
    return None


def _jpeg_structured(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    parsed = _jpeg_segments(data)
    if parsed is None:
        return mutate_bytes(data, rng)
    segs, scan = parsed
    sof = [s for s in segs if 0xC0 <= s[0] <= 0xCF and s[0] not in (0xC4, 0xC8, 0xCC)]
    op = rng.choice(("sof", "sof", "sof", "sof_type", "table", "seglen", "drop", "scan", "scan", "dri", "exif", "sos"))
    note = op
    if op == "sof" and sof and len(sof[0][1]) >= 6:
        p = bytearray(sof[0][1])
        field_ = rng.choice(("precision", "height", "width", "ncomp", "sampling", "qtable", "hw"))
        if field_ == "precision":
            p[0] = rng.choice((0, 1, 2, 12, 16, 255))
        if field_ in ("height", "hw"):
            p[1:3] = struct.pack(">H", rng.choice((0, 1, 2, 8, 65535, 30000, 4000)))
        if field_ in ("width", "hw"):
            p[3:5] = struct.pack(">H", rng.choice((0, 1, 2, 8, 65535, 30000, 4000)))
        if field_ == "ncomp":
            p[5] = rng.choice((0, 2, 3, 4, 255))
        if field_ == "sampling" and len(p) >= 8:
            p[7] = rng.choice((0x00, 0x11, 0x22, 0x44, 0x12, 0x41, 0xFF, 0x88))
        if field_ == "qtable" and len(p) >= 9:
            p[8] = rng.choice((1, 2, 3, 4, 255))
        sof[0][1] = bytes(p)
        note = f"SOF {field_}: {p[:9].hex()}"
    elif op == "sof_type" and sof:
        sof[0][0] = rng.choice((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
        note = f"SOF marker {sof[0][0]:#x}"
    elif op == "table":
        tables = [s for s in segs if s[0] in (0xC4, 0xDB)]
        if tables:
            t = rng.choice(tables)
            p = bytearray(t[1])
            for _ in range(rng.choice((1, 2, 8))):
                if p:
                    p[rng.randrange(len(p))] = rng.choice((0, 0xFF, rng.randrange(256)))
            if rng.random() < 0.3:
                p = p[: rng.randrange(len(p) + 1)]
            t[1] = bytes(p)
            note = f"{'DHT' if t[0] == 0xC4 else 'DQT'} damaged"
    elif op == "seglen":
        j = rng.randrange(len(segs))
        out = b"\xff\xd8"
        for i, (m, p) in enumerate(segs):
            length = len(p) + 2 if i != j else rng.choice((0, 1, 2, 3, len(p) + 3, len(p) + 1, 65535))
            out += bytes([0xFF, m]) + struct.pack(">H", length % 65536) + p
        return out + scan, f"jpeg:segment {segs[j][0]:#x} length field changed"
    elif op == "drop":
        j = rng.randrange(len(segs))
        note = f"drop segment {segs[j][0]:#x}"
        del segs[j]
    elif op == "scan":
        s = bytearray(scan)
        kind = rng.choice(("flip", "rst", "eoi", "noeoi", "cut"))
        if kind == "flip" and s:
            for _ in range(rng.choice((1, 4, 32))):
                s[rng.randrange(len(s))] ^= 1 << rng.randrange(8)
        elif kind == "rst" and s:
            i = rng.randrange(len(s))
            s[i:i] = bytes([0xFF, rng.choice((0xD0, 0xD3, 0xD7, 0xC4, 0xDA, 0xFF, 0x01))])
        elif kind == "eoi" and s:
            i = rng.randrange(len(s))
            s[i:i] = b"\xff\xd9"
        elif kind == "noeoi":
            s = s[:-2] if s.endswith(b"\xff\xd9") else s
        else:
            i = rng.randrange(len(s) + 1)
            s = s[:i] + b"\xff\xd9"
        scan = bytes(s)
        note = f"scan {kind}"
    elif op == "dri":
        segs.insert(len(segs) - 1, [0xDD, struct.pack(">H", rng.choice((0, 1, 2, 65535)))])
        note = "restart interval"
    elif op == "exif":
        tiff = rng.choice((
            b"MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01" + struct.pack(">H", rng.choice((0, 3, 6, 8, 9, 65535))) + b"\x00\x00",
            b"II*\x00" + struct.pack("<I", rng.choice((0, 8, 0xFFFFFFFF, 7))) + rng.randbytes(64),
            b"MM\x00*\x00\x00\x00\x08" + struct.pack(">H", 0xFFFF) + rng.randbytes(100),
        ))
        segs.insert(0, [0xE1, b"Exif\x00\x00" + tiff])
        note = "EXIF added"
    elif op == "sos":
        p = bytearray(segs[-1][1])
        if p:
            p[0] = rng.choice((0, 2, 3, 4, 255))
        segs[-1][1] = bytes(p)
        note = "SOS component count"
    out = b"\xff\xd8" + b"".join(bytes([0xFF, m]) + struct.pack(">H", (len(p) + 2) % 65536) + p for m, p in segs)
    return out + scan, f"jpeg:{note}"


# ---------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------


@dataclass
class Case:
    index: int
    seed: str
    suffix: str
    ops: list[str]
    data: bytes


def make_case(seeds: list[Seed], run_seed: int, index: int, heavy: bool = True) -> Case:
    """Case ``index`` of run ``run_seed``: depends on nothing else (reproducible alone).
    ``heavy`` allows valid images near the 100 MP limit (several seconds and GiB each)."""
    rng = random.Random(f"radlens-fuzz/{run_seed}/{index}")
    seed = rng.choices(seeds, weights=[s.weight for s in seeds])[0]
    ops: list[str] = []
    data = seed.data
    structured = rng.random() < (0.65 if seed.kind == "dicom" else 0.45)
    if structured:
        try:
            if seed.kind == "dicom":
                with _lenient_pydicom():
                    data, ops = _dicom_structured(seed, rng)
            elif seed.kind == "png":
                data, op = _png_structured(data, rng, heavy)
                ops = [op]
            else:
                data, op = _jpeg_structured(data, rng)
                ops = [op]
        except Exception as e:  # noqa: BLE001 - a mutation pydicom cannot write: fall back to bytes
            ops = [f"(structured mutation not writable: {type(e).__name__}: {str(e)[:80]})"]
            data = seed.data
            structured = False
    if not structured or rng.random() < 0.15:
        hot = _dicom_hot(data) if seed.kind == "dicom" else [(0, min(len(data), 1024))]
        for _ in range(1 if structured else rng.choice((1, 1, 1, 2, 3, 4))):
            data, op = mutate_bytes(data, rng, hot)
            ops.append(op)
    suffix = seed.suffix
    if rng.random() < 0.03:
        suffix = rng.choice(("", ".png", ".jpg", ".dcm", ".txt", ".123"))
        ops.append(f"named {suffix or '<no suffix>'}")
    return Case(index, seed.name, suffix, ops, data)


# ---------------------------------------------------------------------------------------
# Oracle (runs in the child)
# ---------------------------------------------------------------------------------------


def check_output(img: Any) -> list[str]:
    """What is wrong with a returned image (empty list: nothing)."""
    import numpy as np

    problems = []
    px = getattr(img, "pixels", None)
    vals = getattr(img, "values", None)
    if not isinstance(px, np.ndarray):
        return [f"pixels is {type(px).__name__}, not an ndarray"]
    if px.dtype != np.float32:
        problems.append(f"pixels dtype {px.dtype} (float32 expected)")
    if px.ndim != 2:
        problems.append(f"pixels shape {px.shape} (2-D expected)")
    elif 0 in px.shape:
        problems.append(f"pixels shape {px.shape} is empty")
    if px.dtype.kind in "fc" and px.size:
        problems += _non_finite("pixels", px)
        finite = px[np.isfinite(px)]
        if finite.size and (float(finite.min()) < 0.0 or float(finite.max()) > 1.0):
            problems.append(f"pixels outside [0, 1]: {float(finite.min())!r}..{float(finite.max())!r}")
    elif px.size and (px.min() < 0 or px.max() > 1):
        problems.append("pixels outside [0, 1]")
    if not isinstance(vals, np.ndarray):
        problems.append(f"values is {type(vals).__name__}, not an ndarray")
    else:
        if vals.shape != px.shape:
            problems.append(f"values shape {vals.shape} != pixels shape {px.shape}")
        if vals.dtype.kind in "fc" and vals.size:
            problems += _non_finite("values", vals)
    return problems


def _non_finite(what: str, a: Any) -> list[str]:
    import numpy as np

    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    return [f"{what} contain {n} {kind}" for n, kind in ((nan, "NaN"), (inf, "inf")) if n]


def _resolve(target: str) -> Callable[[str], Any]:
    import importlib

    mod, _, name = target.partition(":")
    return getattr(importlib.import_module(mod), name)


def run_one(fn: Callable[[str], Any], path: str, on_loaded: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Load one file and judge the result (in the child). ``on_loaded`` is told when the
    loader returned, so that the time the oracle takes on a huge image is not the loader's."""
    import traceback

    from engine.errors import RadLensError

    t0 = time.perf_counter()
    try:
        img = fn(path)
    except RadLensError as e:
        return {"outcome": "typed", "error": type(e).__name__, "message": str(e)[:500],
                "elapsed": time.perf_counter() - t0}
    except BaseException as e:  # noqa: BLE001 - the point: anything else is a failure
        tb = traceback.extract_tb(e.__traceback__)
        frames = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in tb]
        return {"outcome": "fail", "category": "exception", "error": f"{type(e).__module__}.{type(e).__qualname__}",
                "message": str(e)[:500], "frames": frames[-12:],
                "traceback": "".join(traceback.format_exception(type(e), e, e.__traceback__))[-6000:],
                "elapsed": time.perf_counter() - t0}
    elapsed = time.perf_counter() - t0
    if on_loaded is not None:
        on_loaded(elapsed)
    try:
        problems = check_output(img)
    except Exception as e:  # noqa: BLE001
        problems = [f"output could not be checked: {type(e).__name__}: {e}"]
    if problems:
        return {"outcome": "fail", "category": "bad_output", "problems": problems, "elapsed": elapsed}
    return {"outcome": "ok", "shape": list(img.pixels.shape), "elapsed": elapsed}


def _selftest_target(path: str) -> Any:
    """A stand-in loader for testing the harness: the file's first bytes say what to do."""
    import numpy as np

    from engine.errors import CorruptImageError

    data = Path(path).read_bytes()
    if data.startswith(b"HANG"):
        time.sleep(3600)
    if data.startswith(b"SEGV"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if data.startswith(b"EXIT"):
        os._exit(3)
    if data.startswith(b"RAISE"):
        raise KeyError("boom")
    if data.startswith(b"TYPED"):
        raise CorruptImageError("typed")
    px = np.zeros((4, 4), np.float32)
    if data.startswith(b"NAN"):
        px[0, 0] = np.nan
    if data.startswith(b"WIDE"):
        px[0, 0] = 2.0
    return type("Img", (), {"pixels": px, "values": px.copy()})()


def worker_main() -> None:
    """Child loop: read {"path"} lines on stdin, write one JSON result line per case."""
    import faulthandler
    import logging

    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # whatever a library prints goes to the worker log, not the result pipe
    faulthandler.enable(all_threads=True)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)
    mem_mb = int(os.environ.get("RADLENS_FUZZ_MEM_MB", "0") or 0)
    if mem_mb > 0:
        import resource

        limit = mem_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    fn = _resolve(os.environ.get("RADLENS_FUZZ_TARGET", DEFAULT_TARGET))
    with contextlib.suppress(Exception):  # import the decoders now, not in the first case
        import pydicom.pixels  # noqa: F401

        import engine.io.dicom  # noqa: F401
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        sys.stderr.write(f"--- case {req.get('index')} {req['path']}\n")
        sys.stderr.flush()
        res = run_one(fn, req["path"], lambda t: out.write(json.dumps({"loaded": t}) + "\n"))
        out.write(json.dumps(res) + "\n")


# ---------------------------------------------------------------------------------------
# Worker pool (runs in the parent)
# ---------------------------------------------------------------------------------------


class _Worker:
    def __init__(self, slot: int, log_dir: Path, target: str, mem_mb: int, engine_root: Path | None = None) -> None:
        self.slot = slot
        self.engine_root = engine_root
        self.log_path = log_dir / f"worker-{slot}.log"
        self.target = target
        self.mem_mb = mem_mb
        self.proc: subprocess.Popen[bytes] | None = None
        self.buf = b""
        self.case: Case | None = None
        self.path: Path | None = None
        self.started = 0.0
        self.log_offset = 0
        self.restarts = -1
        self.start()

    def start(self) -> None:
        self.restarts += 1
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.engine_root or REPO), str(TESTS)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.update(RADLENS_FUZZ_TARGET=self.target, RADLENS_FUZZ_MEM_MB=str(self.mem_mb), OMP_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENCV_FOR_THREADS_NUM="1", PYTHONUNBUFFERED="1")
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import fuzzcases; fuzzcases.worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=self.log_path.parent, env=env,
            start_new_session=True,  # cwd: not the checkout, so PYTHONPATH decides which engine/ loads
        )
        log.close()
        self.buf = b""
        deadline = time.monotonic() + 120
        line = self._readline(deadline)
        if line is None or b"ready" not in line:
            self.kill()
            raise RuntimeError(f"fuzz worker did not start; see {self.log_path}:\n{self.log_tail(0)}")

    def _readline(self, deadline: float) -> bytes | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def fileno(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def send(self, case: Case, path: Path) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.case, self.path = case, path
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.started = time.monotonic()
        self.proc.stdin.write((json.dumps({"path": str(path), "index": case.index}) + "\n").encode())
        self.proc.stdin.flush()

    def log_tail(self, offset: int | None = None, limit: int = 6000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset if offset is None else offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return text[-limit:]

    def kill(self) -> int | None:
        if self.proc is None:
            return None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[union-attr]
        return self.proc.returncode

    def stack_dump_and_kill(self) -> str:
        """faulthandler stack of a hung child (SIGUSR1), then SIGKILL."""
        if self.proc is not None and hasattr(signal, "SIGUSR1"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGUSR1)
            time.sleep(0.5)
        self.kill()
        return self.log_tail()


def _signal_name(rc: int | None) -> str:
    if rc is None:
        return "unknown"
    if rc < 0:
        try:
            return signal.Signals(-rc).name
        except ValueError:
            return f"signal {-rc}"
    return f"exit status {rc}"


def _crash_frames(log: str) -> list[str]:
    """Innermost-first Python frames from a faulthandler dump."""
    frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', log)
    return [f"{Path(f).name}:{line} {fn}" for f, line, fn in frames][:12]


def signature(rec: dict[str, Any]) -> str:
    """A short key grouping failures that are probably one bug."""
    cat = rec["category"]
    if cat == "exception":
        frames = rec.get("frames", [])
        where = re.sub(r":[0-9]+", "", frames[-1]) if frames else "?"
        via = next((f for f in reversed(frames) if f.split(":")[0] in _ENGINE_FILES), "")
        return f"exception {rec.get('error')} at {where}" + (f" (via {re.sub(r':[0-9]+', '', via)})" if via and via != frames[-1] else "")
    if cat == "bad_output":
        probs = sorted({re.sub(r"[-+]?[0-9][0-9.e+-]*|nan|inf", "#", p) for p in rec.get("problems", [])})
        return "bad_output " + "; ".join(probs)
    if cat == "crash":
        frames = rec.get("frames") or []
        return f"crash {rec.get('signal')} at {re.sub(r':[0-9]+', '', frames[0]) if frames else '?'}"
    frames = rec.get("frames") or []
    return f"hang at {re.sub(r':[0-9]+', '', frames[0]) if frames else '?'}"


def message_template(msg: str) -> str:
    """A typed error message without its file name and numbers, to count kinds of message."""
    msg = msg.split(": ", 1)[1] if ": " in msg[:120] else msg
    msg = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", msg)
    msg = re.sub(r"0x[0-9a-fA-F]+|[-+]?[0-9][0-9.,e+-]*", "#", msg)
    return msg[:140]


_ENGINE_FILES = {"io.py", "dicom.py", "dicom_header.py", "display.py", "fileio.py", "image.py"}


@dataclass
class FuzzResult:
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0
    cases: int = 0
    restarts: int = 0
    generator_fallbacks: int = 0
    slowest: list[tuple[float, int, str]] = field(default_factory=list)
    typed_templates: Counter[str] = field(default_factory=Counter)  # typed error messages, normalised
    typed_examples: dict[str, int] = field(default_factory=dict)  # template -> first case index

    def typed_summary(self, top: int = 30) -> str:
        lines = [f"  typed error messages (top {top} of {len(self.typed_templates)} kinds; number = count, #case):"]
        for tmpl, n in self.typed_templates.most_common(top):
            lines.append(f"    {n:5d} #{self.typed_examples[tmpl]:<6d} {tmpl}")
        return "\n".join(lines)

    def summary(self, max_signatures: int = 40) -> str:
        lines = [f"{self.cases} cases in {self.elapsed:.1f} s ({self.cases / max(self.elapsed, 1e-9):.1f}/s), "
                 f"{self.restarts} worker restarts, {self.generator_fallbacks} structured mutations fell back to bytes"]
        ok = self.counts.get("ok", 0)
        lines.append(f"  loaded ok: {ok}")
        typed = sorted((k, v) for k, v in self.counts.items() if k.startswith("typed:"))
        lines.append(f"  typed errors: {sum(v for _, v in typed)}")
        lines += [f"    {k[6:]}: {v}" for k, v in typed]
        fails = {c: self.counts.get(f"fail:{c}", 0) for c in FAIL_CATEGORIES}
        lines.append(f"  failures: {sum(fails.values())}")
        lines += [f"    {c}: {n}" for c, n in fails.items()]
        if self.failures:
            groups: dict[str, list[dict[str, Any]]] = {}
            for rec in self.failures:
                groups.setdefault(rec["signature"], []).append(rec)
            lines.append("  by signature (count, example case):")
            for sig, recs in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:max_signatures]:
                ex = recs[0]
                detail = ex.get("message") or "; ".join(ex.get("problems", [])) or ex.get("signal", "")
                lines.append(f"    {len(recs):5d}  {sig}")
                lines.append(f"           e.g. case {ex['case']} seed={ex['seed_file']} ops={ex['ops']}")
                if detail:
                    lines.append(f"           {str(detail)[:300]}")
                if ex.get("file"):
                    lines.append(f"           file: {ex['file']}")
        if self.slowest:
            lines.append("  slowest cases: " + ", ".join(f"#{i} {t:.2f}s ({s})" for t, i, s in sorted(self.slowest, reverse=True)[:5]))
        return "\n".join(lines)


def run_fuzz(
    seeds: list[Seed],
    cases: int | Iterable[int],
    run_seed: int,
    workers: int = 2,
    timeout: float = 10.0,
    out_dir: Path | None = None,
    target: str = DEFAULT_TARGET,
    mem_mb: int = 6144,
    progress: Callable[[FuzzResult], None] | None = None,
    files: list[Path] | None = None,
    heavy: bool = True,
    engine_root: Path | None = None,
    save_typed: str | None = None,
) -> FuzzResult:
    """Run cases (an int: 0..n-1, or given indices) through ``workers`` child processes.

    With ``files``, those files are judged instead of generated cases. Failing case files
    and a JSON line for each go to ``out_dir`` (``cases/`` and ``failures.jsonl``). With
    ``save_typed`` (a regular expression), typed errors whose message matches it are kept
    too (three files per kind of message: ``typed/`` and ``typed.jsonl``)."""
    res = FuzzResult()
    work = Path(tempfile.mkdtemp(prefix="radlens-fuzz-"))
    if out_dir is not None:
        (out_dir / "cases").mkdir(parents=True, exist_ok=True)
    jsonl = open(out_dir / "failures.jsonl", "a", encoding="utf-8") if out_dir is not None else None  # noqa: SIM115
    log_dir = out_dir if out_dir is not None else work
    if files is not None:
        jobs: Iterator[Any] = iter(enumerate(files))
    else:
        jobs = iter(range(cases) if isinstance(cases, int) else cases)
    pool: list[_Worker] = []
    t0 = time.monotonic()

    def next_case() -> tuple[Case, Path] | None:
        j = next(jobs, None)
        if j is None:
            return None
        if files is not None:
            i, src = j
            case = Case(i, str(src), src.suffix, ["(given file)"], b"")
            return case, Path(src)
        case = make_case(seeds, run_seed, j, heavy)
        if case.ops and case.ops[0].startswith("(structured mutation not writable"):
            res.generator_fallbacks += 1
        path = work / f"case-{case.index:07d}{case.suffix}"
        path.write_bytes(case.data)
        return case, path

    def record(w: _Worker, result: dict[str, Any]) -> None:
        case, path = w.case, w.path
        assert case is not None and path is not None
        w.case = w.path = None
        res.cases += 1
        elapsed = float(result.get("elapsed", time.monotonic() - w.started))
        res.slowest.append((elapsed, case.index, case.seed))
        res.slowest = sorted(res.slowest, reverse=True)[:10]
        if result["outcome"] == "ok":
            res.counts["ok"] += 1
        elif result["outcome"] == "typed":
            res.counts[f"typed:{result['error']}"] += 1
            tmpl = f"{result['error']}: {message_template(result.get('message', ''))}"
            res.typed_templates[tmpl] += 1
            res.typed_examples.setdefault(tmpl, case.index)
            if (save_typed and out_dir is not None and files is None and res.typed_templates[tmpl] <= 3
                    and re.search(save_typed, result.get("message", ""))):
                (out_dir / "typed").mkdir(exist_ok=True)
                dest = out_dir / "typed" / f"{result['error']}-{case.index:07d}{case.suffix}"
                shutil.copyfile(path, dest)
                with open(out_dir / "typed.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps({"case": case.index, "run_seed": run_seed, "seed_file": case.seed,
                                        "ops": case.ops, "file": str(dest), **result}) + "\n")
        else:
            res.counts[f"fail:{result['category']}"] += 1
            rec = {"case": case.index, "run_seed": run_seed, "seed_file": case.seed, "ops": case.ops, **result}
            rec["signature"] = signature(rec)
            if out_dir is not None and files is None:
                name = f"{result['category']}-{case.index:07d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', case.seed.split(':', 1)[-1])}{case.suffix}"
                dest = out_dir / "cases" / name
                shutil.copyfile(path, dest)
                rec["file"] = str(dest)
            elif files is not None:
                rec["file"] = str(path)
            res.failures.append(rec)
            if jsonl is not None:
                jsonl.write(json.dumps(rec) + "\n")
                jsonl.flush()
        if files is None:
            with contextlib.suppress(OSError):
                path.unlink()

    try:
        for slot in range(max(1, workers)):
            pool.append(_Worker(slot, log_dir, target, mem_mb, engine_root))
        exhausted = False
        while True:
            for w in pool:
                if w.case is None and not exhausted:
                    nxt = next_case()
                    if nxt is None:
                        exhausted = True
                    else:
                        w.send(*nxt)
            busy = [w for w in pool if w.case is not None]
            if not busy:
                break
            now = time.monotonic()
            wait = max(0.0, min(w.started + timeout for w in busy) - now)
            ready, _, _ = select.select([w.fileno() for w in busy], [], [], min(wait, 1.0))
            for w in busy:
                if w.fileno() in ready:
                    try:
                        chunk = os.read(w.fileno(), 65536)
                    except OSError:
                        chunk = b""
                    if chunk:
                        w.buf += chunk
                        while b"\n" in w.buf and w.case is not None:
                            line, _, w.buf = w.buf.partition(b"\n")
                            msg = json.loads(line)
                            if "loaded" in msg:  # the loader returned: the check gets its own timeout
                                w.started = time.monotonic()
                            else:
                                record(w, msg)
                        continue
                    # EOF: the child died during the case
                    with contextlib.suppress(Exception):
                        w.proc.wait(timeout=10)  # type: ignore[union-attr]
                    rc = w.proc.returncode if w.proc else None  # type: ignore[union-attr]
                    time.sleep(0.05)
                    log = w.log_tail()
                    w.kill()
                    record(w, {"outcome": "fail", "category": "crash", "signal": _signal_name(rc), "returncode": rc,
                               "frames": _crash_frames(log), "log": log[-4000:], "elapsed": time.monotonic() - w.started})
                    w.start()
                elif time.monotonic() - w.started > timeout:
                    log = w.stack_dump_and_kill()
                    record(w, {"outcome": "fail", "category": "hang", "timeout": timeout, "frames": _crash_frames(log),
                               "log": log[-4000:], "elapsed": time.monotonic() - w.started})
                    w.start()
            if progress is not None:
                res.elapsed = time.monotonic() - t0
                progress(res)
    finally:
        for w in pool:
            res.restarts += w.restarts
            w.kill()
        if jsonl is not None:
            jsonl.close()
        shutil.rmtree(work, ignore_errors=True)
    res.elapsed = time.monotonic() - t0
    return res
