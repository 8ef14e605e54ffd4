"""RadLens opens every DICOM file DCMTK opens (issue 23), with DCMTK as the oracle.

DCMTK's decoders (``dcmdjpeg``, ``dcmdrle``, ``dcmdjpls``; ``dcmconv`` for native data) write
the decoded file; the engine opens the original and the decoded file, and the two display
images are compared: pixel-equal for lossless transfer syntaxes, correlation >= 0.99 for
lossy JPEG. The tests that need DCMTK skip when it is not on PATH (``apt-get install
dcmtk``); with ``RADLENS_REQUIRE_DCMTK=1`` (CI) they fail instead.

Also here: the second JPEG decoder's refusals (truncated frame, frame against header, a
frame both decoders refuse), and the Specific Character Set of the identifiers and tag rows.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.encaps import encapsulate, get_frame
from pydicom.uid import JPEGExtended12Bit

from engine.errors import CorruptImageError, ImageLoadError, UnsupportedImageError
from engine.io import load_image
from engine.io.dicom import dicom_tags
from engine.io.image import LoadedImage

DCMTK_TOOLS = ("dcmdjpeg", "dcmdrle", "dcmdjpls", "dcmconv", "dcmcjpeg", "dcm2pnm")
JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.53", "1.2.840.10008.1.2.4.55",
        "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")
DECODER = {**dict.fromkeys(JPEG, "dcmdjpeg"), "1.2.840.10008.1.2.5": "dcmdrle",
           "1.2.840.10008.1.2.4.80": "dcmdjpls", "1.2.840.10008.1.2.4.81": "dcmdjpls"}
NATIVE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")
LOSSY = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.53", "1.2.840.10008.1.2.4.55",
         "1.2.840.10008.1.2.4.81")
FALLBACK_NOTE = "decoded with imagecodecs"

# Files DCMTK opens that the engine refuses on purpose (each must still be refused, so the list stays true).
KNOWN_DIFFERENCES = {
    # DCMTK reads the IS value "1A" as 1; the engine refuses an unreadable Number of Frames
    # (tests/engine/test_dicom_faults.py: "frames_text") rather than guess which frame to show.
    "badVR.dcm": (CorruptImageError, "NumberOfFrames"),
}
# Files whose DCMTK output is wrong, compared with their little-endian twin instead: dcmconv swaps the
# 32-bit big-endian RT Dose pixels as 16-bit OW words (values up to 4.3e9 instead of 1.25e6).
REFERENCE_TWIN = {"rtdose_expb.dcm": "rtdose.dcm", "rtdose_expb_1frame.dcm": "rtdose_1frame.dcm"}


def _need_dcmtk() -> None:
    missing = [t for t in DCMTK_TOOLS if shutil.which(t) is None]
    if not missing:
        return
    msg = f"DCMTK not on PATH ({', '.join(missing)} missing): install it with apt-get install dcmtk"
    if os.environ.get("RADLENS_REQUIRE_DCMTK") == "1":
        pytest.fail(msg + " (RADLENS_REQUIRE_DCMTK=1)")
    pytest.skip(msg)


def _run(*args: str | Path) -> bool:
    return subprocess.run([str(a) for a in args], capture_output=True, timeout=60).returncode == 0


def dcmtk_decode(src: Path, dst: Path) -> bool:
    """True when DCMTK decodes ``src``'s pixel data: its decoder for the transfer syntax
    (dcmconv for native data) writes ``dst`` and dcm2pnm renders that file's image."""
    try:
        ts = str(pydicom.dcmread(src, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    except Exception:  # noqa: BLE001 - no file meta: DCMTK guesses, as the engine does; dcmconv decides
        ts = NATIVE[0]
    if ts in DECODER:
        ok = _run(DECODER[ts], src, dst)
    elif ts in NATIVE or ts == "1.2.840.10008.1.2.1.99":
        ok = _run("dcmconv", "+te", src, dst)
    else:  # JPEG 2000, HTJ2K, video...: no decoder in the free DCMTK
        return False
    return ok and dst.exists() and _run("dcm2pnm", dst, dst.with_suffix(".pnm"))


def _bundled(name: str) -> Path:
    local = Path(pydicom.data.__file__).parent / "test_files" / name
    if not local.exists():
        pytest.skip(f"pydicom test file {name} is not bundled with this pydicom")
    return local


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    if a.std() == 0 or b.std() == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _assert_same_image(im: LoadedImage, ref: LoadedImage, lossy: bool, name: str) -> None:
    assert im.shape == ref.shape, f"{name}: {im.shape} vs DCMTK {ref.shape}"
    if lossy:
        r = _corr(im.pixels, ref.pixels)
        assert r >= 0.99, f"{name}: display correlation with DCMTK's decode {r:.4f} < 0.99"
        assert float(np.abs(im.pixels - ref.pixels).mean()) < 0.01, name
    else:
        np.testing.assert_array_equal(im.values, ref.values, err_msg=f"{name}: modality values differ from DCMTK's")
        np.testing.assert_array_equal(im.pixels, ref.pixels, err_msg=f"{name}: display differs from DCMTK's")


# (a) named 12-bit, spectral selection and progressive JPEG files -------------------------------


@pytest.fixture(scope="module")
def dcmtk_encoded(tmp_path_factory: pytest.TempPathFactory, dicom_dir: Path) -> dict[str, Path]:
    """Real radiographs of ../shared/data/dicom encoded by DCMTK's dcmcjpeg: 12-bit JPEG
    Extended (+ee), spectral selection (+es, .53) and full progression (+ep, .55). RG3 is
    the NEMA WG04 RG3 radiograph (1760x1760, 10 bits), so rg3_ee is an RG3_JPLY-like file."""
    _need_dcmtk()
    out = tmp_path_factory.mktemp("dcmtk")
    raw = {"rg3": out / "rg3.dcm", "chest": out / "chest.dcm", "nccid": out / "nccid.dcm"}
    assert _run("dcmdjpeg", dicom_dir / "RG3_JPLL.dcm", raw["rg3"])
    assert _run("dcmconv", "-f", "+te", dicom_dir / "CR-MONO1-10-chest.dcm", raw["chest"])  # no file meta
    assert _run("dcmconv", "+te", dicom_dir / "nccid_nih_dx.dcm", raw["nccid"])
    files = {}
    for src, modes in (("rg3", ("ee", "es", "ep")), ("chest", ("ee", "es", "ep")), ("nccid", ("es", "ep"))):
        for mode in modes:
            files[f"{src}_{mode}"] = out / f"{src}_{mode}.dcm"
            assert _run("dcmcjpeg", f"+{mode}", raw[src], files[f"{src}_{mode}"])
    return files


# name -> (transfer syntax, bits of JPEG precision, whether pydicom's plugins refuse it)
NAMED_ENCODED = {
    "rg3_ee": ("1.2.840.10008.1.2.4.51", 12, False), "rg3_es": ("1.2.840.10008.1.2.4.53", 12, True),
    "rg3_ep": ("1.2.840.10008.1.2.4.55", 12, True), "chest_ee": ("1.2.840.10008.1.2.4.51", 12, False),
    "chest_es": ("1.2.840.10008.1.2.4.53", 12, True), "chest_ep": ("1.2.840.10008.1.2.4.55", 12, True),
    "nccid_es": ("1.2.840.10008.1.2.4.53", 8, True), "nccid_ep": ("1.2.840.10008.1.2.4.55", 8, True),
}


@pytest.mark.parametrize("name", sorted(NAMED_ENCODED))
def test_dcmtk_encoded_jpeg_matches_dcmtk_decode(tmp_path: Path, dcmtk_encoded: dict[str, Path], name: str) -> None:
    src = dcmtk_encoded[name]
    ts, precision, fallback = NAMED_ENCODED[name]
    assert str(pydicom.dcmread(src, stop_before_pixels=True).file_meta.TransferSyntaxUID) == ts
    im = load_image(src)
    assert im.meta.transfer_syntax == ts
    assert any(FALLBACK_NOTE in n for n in im.meta.notes) == fallback, im.meta.notes
    if fallback:
        assert any(f"{precision}-bit" in n for n in im.meta.notes if FALLBACK_NOTE in n)
    assert dcmtk_decode(src, tmp_path / "ref.dcm")
    _assert_same_image(im, load_image(tmp_path / "ref.dcm"), lossy=True, name=name)


# Real files pydicom's plugins refuse: (where, file, transfer syntax, shape, bits stored)
NAMED_FILES = {
    # NEMA WG04 RG2 (hip CR), 12-bit JPEG Extended whose scan header pylibjpeg-libjpeg rejects
    "RG2_JPLY.dcm": ("shared", JPEGExtended12Bit, (2140, 1760), 10),
    # pydicom's (and pylibjpeg's) 12-bit lossy sample, the same scan header quirk
    "JPEG-lossy.dcm": ("pydicom", JPEGExtended12Bit, (1024, 256), 12),
}


def _named(dicom_dir: Path, name: str) -> Path:
    return dicom_dir / name if NAMED_FILES[name][0] == "shared" else _bundled(name)


@pytest.mark.parametrize("name", sorted(NAMED_FILES))
def test_12bit_jpeg_pydicom_refuses_opens(dicom_dir: Path, name: str) -> None:
    path = _named(dicom_dir, name)
    _, ts, shape, bits = NAMED_FILES[name]
    with pytest.raises(Exception):  # noqa: B017 - pydicom's plugins refuse it (whatever they raise)
        _ = pydicom.dcmread(path).pixel_array
    im = load_image(path)
    assert im.shape == shape and im.meta.bits_stored == bits
    assert im.meta.transfer_syntax == ts and im.meta.transfer_syntax_name == ts.name
    assert any(FALLBACK_NOTE in n and "12-bit" in n for n in im.meta.notes), im.meta.notes
    assert float(im.pixels.std()) > 0.05  # a real image, not a grey field


@pytest.mark.parametrize("name", sorted(NAMED_FILES))
def test_12bit_jpeg_matches_dcmtk_decode(tmp_path: Path, dicom_dir: Path, name: str) -> None:
    _need_dcmtk()
    path = _named(dicom_dir, name)
    assert dcmtk_decode(path, tmp_path / "ref.dcm")
    _assert_same_image(load_image(path), load_image(tmp_path / "ref.dcm"), lossy=True, name=name)


def test_jpeg_lossy_same_as_its_fixed_twin() -> None:
    """JPGExtended.dcm is JPEG-lossy.dcm with the scan header fixed (pydicom decodes it):
    the second decoder gives the image pydicom's plugin gives for the twin, to lossy-IDCT rounding."""
    a, b = load_image(_bundled("JPEG-lossy.dcm")), load_image(_bundled("JPGExtended.dcm"))
    assert not any(FALLBACK_NOTE in n for n in b.meta.notes)
    assert _corr(a.pixels, b.pixels) >= 0.999
    assert float(np.abs(a.values - b.values).max()) <= 2.0


def test_progressive_jpeg_without_dcmtk(tmp_path: Path, dicom_dir: Path) -> None:
    """Full progression (.55) from a real radiograph, encoded by Pillow (no DCMTK needed):
    opens through the second decoder, close to the uncompressed original."""
    image = pytest.importorskip("PIL.Image")
    src = pydicom.dcmread(dicom_dir / "nccid_nih_dx.dcm")
    original = src.pixel_array
    buf = io.BytesIO()
    image.fromarray(original).save(buf, format="JPEG", quality=95, progressive=True)
    src.PixelData = encapsulate([buf.getvalue()])
    src["PixelData"].VR = "OB"
    src.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.55"
    src.LossyImageCompression = "01"
    path = tmp_path / "progressive.dcm"
    src.save_as(path, enforce_file_format=True)
    im = load_image(path)
    assert any(FALLBACK_NOTE in n and "progressive" in n for n in im.meta.notes), im.meta.notes
    assert _corr(im.values, original) >= 0.99
    assert float(np.abs(im.values - original.astype(np.float32)).mean()) < 2.0


# (b) pydicom's bundled test files: whatever DCMTK decodes, the engine opens ------------------


def test_pydicom_corpus_opens_what_dcmtk_opens(tmp_path: Path) -> None:
    """Every file of pydicom's bundled test data (``get_testdata_files``: ~190 files, all
    sizes, colour and multi-frame included; frame 1 is compared) that DCMTK decodes opens in
    the engine: lossless transfer syntaxes pixel-equal to DCMTK's decode, lossy JPEG with
    correlation >= 0.99. JPEG 2000 and HTJ2K are outside the oracle (the free DCMTK has no
    decoder for them); files that are not images DCMTK leaves out by itself (dcm2pnm fails)."""
    _need_dcmtk()
    checked, failures = [], []
    for i, path in enumerate(sorted(Path(p) for p in pydicom.data.get_testdata_files())):
        ref_path = tmp_path / f"{i}.dcm"
        if not dcmtk_decode(path, ref_path):
            continue
        try:
            ts = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        except Exception:  # noqa: BLE001
            ts = NATIVE[0]
        if path.name in KNOWN_DIFFERENCES:
            kind, words = KNOWN_DIFFERENCES[path.name]
            with pytest.raises(kind, match=words):
                load_image(path)
            continue
        try:
            im = load_image(path)
            ref = load_image(path.with_name(REFERENCE_TWIN[path.name]) if path.name in REFERENCE_TWIN else ref_path)
            _assert_same_image(im, ref, lossy=ts in LOSSY, name=path.name)
        except (ImageLoadError, AssertionError) as e:
            failures.append(f"{path.name} ({ts}): {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        checked.append(path.name)
    assert not failures, "\n".join(failures)
    assert len(checked) >= 40 and "JPEG-lossy.dcm" in checked, checked


# The second decoder's refusals ------------------------------------------------------------------


def _with_frame(src: Path, dst: Path, frame: bytes, **header: object) -> Path:
    ds = pydicom.dcmread(src)
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].is_undefined_length = True
    for k, v in header.items():
        setattr(ds, k, v)
    ds.save_as(dst)
    return dst


def _frame(path: Path) -> bytes:
    return get_frame(pydicom.dcmread(path).PixelData, 0, number_of_frames=1)


@pytest.mark.parametrize("name", ["JPEG-lossy.dcm", "JPGExtended.dcm"])  # second decoder / pydicom's plugin
@pytest.mark.parametrize("cut", ["half", "no_eoi"])
def test_truncated_jpeg_frame_is_refused(tmp_path: Path, name: str, cut: str) -> None:
    """A frame cut short inside well-formed encapsulation: libjpeg-turbo and pylibjpeg-libjpeg
    would fill the missing rows with grey; the engine refuses it, as dcmdjpeg does."""
    src = _bundled(name)
    frame = _frame(src)
    frame = frame[: len(frame) // 2] if cut == "half" else frame[: frame.rindex(b"\xff\xd9")]
    path = _with_frame(src, tmp_path / "cut.dcm", frame)
    with pytest.raises(CorruptImageError, match="truncated") as info:
        load_image(path)
    assert "cut.dcm" in str(info.value) and "Re-copy" in str(info.value)
    if shutil.which("dcmdjpeg"):
        assert not _run("dcmdjpeg", path, tmp_path / "out.dcm")  # DCMTK refuses it too


@pytest.mark.parametrize("header, words", [
    (dict(Rows=1000), "it is 256x1024, the header says 256x1000"),
    (dict(SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0), "Samples per Pixel is 3"),
    (dict(BitsAllocated=8, BitsStored=8, HighBit=7), "Bits Allocated 8"),
    (dict(BitsStored=16, HighBit=15), "Bits Stored is 16"),
])
def test_jpeg_frame_against_header(tmp_path: Path, header: dict, words: str) -> None:
    src = _bundled("JPEG-lossy.dcm")
    path = _with_frame(src, tmp_path / "bad.dcm", _frame(src), **header)
    with pytest.raises(CorruptImageError, match="does not match the DICOM header") as info:
        load_image(path)
    assert words in str(info.value)


def test_frame_both_decoders_refuse_names_the_transfer_syntax(tmp_path: Path, undecodable_dicom: Path) -> None:
    """A 12-bit JPEG Extended file whose frame header says hierarchical (SOF5, a differential
    frame; tests/conftest.py's ``undecodable_dicom``): pydicom's plugins and libjpeg-turbo
    refuse it, and so does DCMTK."""
    path = Path(shutil.copy(undecodable_dicom, tmp_path / "sof5.dcm"))
    with pytest.raises(UnsupportedImageError) as info:
        load_image(path)
    msg = str(info.value)
    assert "sof5.dcm: unsupported compression" in msg
    assert JPEGExtended12Bit.name in msg and str(JPEGExtended12Bit) in msg
    assert "pylibjpeg:" in msg and "imagecodecs:" in msg  # each decoder's reason
    assert "Convert" in msg  # what to do next
    if shutil.which("dcmdjpeg"):
        assert not _run("dcmdjpeg", path, tmp_path / "out.dcm")


# Specific Character Set --------------------------------------------------------------------------

CHARSETS = {  # pydicom's charset test files: (0008,0005), the patient name as it must read
    "chrFren.dcm": ("ISO_IR 100", "Buc^Jérôme"),
    "chrGerm.dcm": ("ISO_IR 100", "Äneas^Rüdiger"),
    "chrX1.dcm": ("ISO_IR 192", "Wang^XiaoDong=王^小東"),
    "chrRuss.dcm": ("ISO_IR 144", "Люкceмбypг"),
    "chrH31.dcm": ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    "chrH32.dcm": ("ISO 2022 IR 13\\ISO 2022 IR 87", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"),
    "chrI2.dcm": ("\\ISO 2022 IR 149", "Hong^Gildong=洪^吉洞=홍^길동"),
}


def _charset_file(name: str) -> Path:
    found = pydicom.data.get_charset_files(name)
    if not found:
        pytest.skip(f"pydicom charset file {name} is not bundled with this pydicom")
    return Path(found[0])


@pytest.mark.parametrize("name", sorted(CHARSETS))
def test_names_decode_with_their_character_set(name: str) -> None:
    path = _charset_file(name)
    charset, patient = CHARSETS[name]
    im = load_image(path)
    assert im.meta.identifiers.patient_name == patient
    for rows in (im.tags, dicom_tags(path)):
        by_kw = {r.keyword: r for r in rows if r.depth == 0}
        assert by_kw["PatientName"].value == patient and by_kw["PatientName"].identifying
        assert by_kw["SpecificCharacterSet"].value == str(pydicom.dcmread(path).SpecificCharacterSet)
    value = pydicom.dcmread(path).SpecificCharacterSet
    assert (value if isinstance(value, str) else "\\".join(value)) == charset


def _without_charset(src: Path, dst: Path) -> bytes:
    """``src`` with (0008,0005) removed and its patient name kept as the original bytes."""
    ds = pydicom.dcmread(src)
    raw = ds.get_item("PatientName").value
    del ds.SpecificCharacterSet
    ds.add_new(0x00100010, "PN", raw)  # bytes: written as they are, not re-encoded
    ds.save_as(dst)
    return raw


@pytest.mark.parametrize("name, shown", [("chrFren.dcm", "Buc^Jérôme"), ("chrX1.dcm", None)])
def test_missing_character_set_is_noted_with_raw_bytes(tmp_path: Path, name: str, shown: str | None) -> None:
    """No (0008,0005) but non-ASCII bytes: pydicom's default decoding is kept (Latin-1: right
    for the French name, mojibake for the UTF-8 one) and a (0008,0005) row says so, with the
    raw bytes."""
    path = tmp_path / name
    raw = _without_charset(_charset_file(name), path)
    assert max(raw) >= 0x80
    im = load_image(path)
    pn = pydicom.dcmread(path).PatientName  # pydicom's default decoding, and the bytes it kept
    assert im.meta.identifiers.patient_name == str(pn) == (shown or str(pn))
    if shown is None:
        assert "王" not in str(pn)  # UTF-8 read as Latin-1: the note is what tells the reader
    for rows in (im.tags, dicom_tags(path)):
        notes = [r for r in rows if r.keyword == "SpecificCharacterSet"]
        assert len(notes) == 1 and notes[0].identifying  # it quotes the patient's name
        assert notes[0].value.startswith("<missing: text with non-ASCII bytes is shown with the default character set")
        assert f"PatientName = {pn.original_string.hex(' ')}" in notes[0].value


def test_ascii_file_without_character_set_has_no_note(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_bundled("CT_small.dcm"))
    del ds.SpecificCharacterSet
    ds.save_as(tmp_path / "ascii.dcm")
    im = load_image(tmp_path / "ascii.dcm")
    assert im.meta.identifiers.patient_name == "CompressedSamples^CT1"
    assert not [r for r in im.tags if r.keyword == "SpecificCharacterSet"]
