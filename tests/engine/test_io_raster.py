"""PNG and JPEG loading: 8/16-bit, gray/RGB/RGBA/palette, detection by content."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.io import load_image, sniff_format


@pytest.fixture(scope="module")
def cxr_gray(cxr_samples: dict[str, list[Path]]) -> np.ndarray:
    """A real chest radiograph as uint8 gray (224x224 from the shared pool)."""
    img = cv2.imread(str(cxr_samples["normal"][0]), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint8 and img.ndim == 2
    return img


def _write(path: Path, arr: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), arr)
    return path


def test_real_jpeg_loads_as_its_gray_levels(cxr_samples: dict[str, list[Path]]) -> None:
    path = cxr_samples["covid"][0]
    im = load_image(path)
    ref = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float32)
    assert im.meta.format == "jpeg"
    assert (im.meta.width, im.meta.height) == (224, 224)
    assert im.pixels.dtype == np.float32 and im.pixels.shape == (224, 224)
    np.testing.assert_array_equal(im.values, ref)
    np.testing.assert_allclose(im.pixels, ref / 255.0, atol=1e-6)
    assert im.meta.bits_stored == 8 and im.meta.photometric == "MONOCHROME2"
    assert im.value_range == (0.0, 255.0)


def test_png_8bit_gray(tmp_path: Path, cxr_gray: np.ndarray) -> None:
    im = load_image(_write(tmp_path / "g8.png", cxr_gray))
    assert im.meta.format == "png" and im.meta.bits_stored == 8
    np.testing.assert_allclose(im.pixels, cxr_gray / 255.0, atol=1e-6)
    assert im.meta.notes == ()


def test_png_16bit_gray_uses_its_own_range(tmp_path: Path, cxr_gray: np.ndarray) -> None:
    g16 = (cxr_gray.astype(np.uint16) * 16 + 100).astype(np.uint16)  # a 12-bit-like range
    im = load_image(_write(tmp_path / "g16.png", g16))
    assert im.meta.bits_stored == 16
    np.testing.assert_array_equal(im.values, g16.astype(np.float32))
    lo, hi = float(g16.min()), float(g16.max())
    np.testing.assert_allclose(im.pixels, (g16 - lo) / (hi - lo), atol=1e-5)
    assert im.pixels.min() == 0.0 and im.pixels.max() == 1.0
    assert any("16-bit" in n for n in im.meta.notes)
    assert im.value_range == (0.0, 65535.0)


def test_png_rgb_gray_replicated_equals_gray(tmp_path: Path, cxr_gray: np.ndarray) -> None:
    rgb = np.dstack([cxr_gray] * 3)
    im = load_image(_write(tmp_path / "rgb.png", rgb))
    np.testing.assert_allclose(im.pixels, cxr_gray / 255.0, atol=1e-6)
    assert not any("colour" in n for n in im.meta.notes)


def test_png_colour_is_converted_and_said(tmp_path: Path, cxr_gray: np.ndarray) -> None:
    bgr = np.dstack([cxr_gray, cxr_gray // 2, 255 - cxr_gray])
    im = load_image(_write(tmp_path / "colour.png", bgr))
    ref = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    np.testing.assert_allclose(im.pixels, ref / 255.0, atol=1e-6)
    assert "colour image converted to grayscale" in im.meta.notes


def test_png_16bit_rgb(tmp_path: Path, cxr_gray: np.ndarray) -> None:
    g16 = cxr_gray.astype(np.uint16) * 257
    im = load_image(_write(tmp_path / "rgb16.png", np.dstack([g16] * 3)))
    assert im.meta.bits_stored == 16 and im.shape == cxr_gray.shape
    np.testing.assert_allclose(im.pixels, (cxr_gray - cxr_gray.min()) / float(cxr_gray.max() - cxr_gray.min()), atol=1e-4)


def test_png_rgba_composited_over_black(tmp_path: Path, cxr_gray: np.ndarray) -> None:
    alpha = np.full_like(cxr_gray, 255)
    alpha[:, :100] = 0  # left part fully transparent
    im = load_image(_write(tmp_path / "rgba.png", np.dstack([cxr_gray] * 3 + [alpha])))
    assert "alpha channel composited over black" in im.meta.notes
    assert float(im.pixels[:, :100].max()) == 0.0
    np.testing.assert_allclose(im.pixels[:, 100:], cxr_gray[:, 100:] / 255.0, atol=1e-6)


def test_png_gray_alpha(tmp_path: Path, cxr_gray: np.ndarray) -> None:
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "la.png"
    pil.fromarray(np.dstack([cxr_gray, np.full_like(cxr_gray, 255)]), "LA").save(path)
    im = load_image(path)
    np.testing.assert_allclose(im.pixels, cxr_gray / 255.0, atol=1e-6)


def test_png_palette(tmp_path: Path, cxr_gray: np.ndarray) -> None:
    pil = pytest.importorskip("PIL.Image", reason="Pillow is needed to write a palette PNG")
    path = tmp_path / "palette.png"
    img = pil.new("P", (cxr_gray.shape[1], cxr_gray.shape[0]))
    img.putpalette([v for i in range(256) for v in (i, i, i)])  # gray ramp palette
    img.putdata(cxr_gray.flatten().tolist())
    img.save(path)
    assert pil.open(path).mode == "P"
    im = load_image(path)
    np.testing.assert_allclose(im.pixels, cxr_gray / 255.0, atol=1e-6)


def test_jpeg_rgb_close_to_gray(tmp_path: Path, cxr_gray: np.ndarray) -> None:
    path = tmp_path / "rgb.jpg"
    assert cv2.imwrite(str(path), np.dstack([cxr_gray] * 3), [cv2.IMWRITE_JPEG_QUALITY, 95])
    im = load_image(path)
    assert im.meta.format == "jpeg" and im.shape == cxr_gray.shape
    assert float(np.mean(np.abs(im.pixels - cxr_gray / 255.0))) < 0.02  # lossy, but the same image


def test_png_named_dcm_is_detected_by_content(tmp_path: Path, cxr_gray: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cxr_gray)
    path = tmp_path / "image.dcm"
    path.write_bytes(buf.tobytes())
    im = load_image(path)
    assert im.meta.format == "png"
    assert "content is PNG despite the .dcm extension" in im.meta.notes
    np.testing.assert_allclose(im.pixels, cxr_gray / 255.0, atol=1e-6)


def test_jpeg_without_extension(tmp_path: Path, cxr_samples: dict[str, list[Path]]) -> None:
    src = cxr_samples["pneumonia"][0]
    path = tmp_path / "image_no_extension"
    path.write_bytes(src.read_bytes())
    im = load_image(path)
    assert im.meta.format == "jpeg"
    np.testing.assert_array_equal(im.values, load_image(src).values)


def test_sniff_format() -> None:
    assert sniff_format(b"\x89PNG\r\n\x1a\n" + b"\0" * 10) == "png"
    assert sniff_format(b"\xff\xd8\xff\xe0" + b"\0" * 10) == "jpeg"
    assert sniff_format(b"\0" * 128 + b"DICM" + b"\0" * 8) == "dicom"
    assert sniff_format(b"\x08\x00\x05\x00CS\x0a\x00") == "dicom-raw"
    assert sniff_format(b"hello world, plain text") is None
    assert sniff_format(b"") is None


@pytest.mark.parametrize("padding", [b"\x00" * 100, b"\x00" * 4096, b"\xff" * 100])
def test_jpeg_with_trailing_padding_loads(tmp_path: Path, cxr_samples: dict[str, list[Path]], padding: bytes) -> None:
    """Bytes after the end-of-image marker (padding from some writers and media) do not
    make a complete JPEG 'truncated'; it decodes exactly like the unpadded file."""
    src = cxr_samples["covid"][0]
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(src.read_bytes() + padding)
    np.testing.assert_array_equal(load_image(padded).values, load_image(src).values)


def test_png_with_trailing_padding_loads(tmp_path: Path, cxr_gray: np.ndarray) -> None:
    src = _write(tmp_path / "a.png", cxr_gray)
    padded = tmp_path / "padded.png"
    padded.write_bytes(src.read_bytes() + b"\x00" * 100)
    np.testing.assert_array_equal(load_image(padded).values, cxr_gray.astype(np.float32))


def _jpeg_with_thumbnail(main: bytes, thumb: bytes) -> bytes:
    """``main`` with an APP1 segment holding a complete small JPEG (as an EXIF thumbnail
    would), placed right after SOI."""
    payload = b"Exif\x00\x00" + thumb
    return main[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + main[2:]


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_jpeg_is_caught_anywhere(tmp_path: Path, cxr_gray: np.ndarray, keep: float) -> None:
    """A cut anywhere in the scan is caught, even when an embedded thumbnail carries its own
    end-of-image marker before the main image."""
    from engine.errors import CorruptImageError

    ok, main = cv2.imencode(".jpg", cxr_gray)
    ok2, thumb = cv2.imencode(".jpg", cv2.resize(cxr_gray, (32, 32)))
    assert ok and ok2
    whole = _jpeg_with_thumbnail(main.tobytes(), thumb.tobytes())
    assert load_image(_write_bytes(tmp_path / "whole.jpg", whole)).shape == (224, 224)
    cut = whole[: int(len(whole) * keep)]
    with pytest.raises(CorruptImageError, match="truncated JPEG"):
        load_image(_write_bytes(tmp_path / "cut.jpg", cut))
    with pytest.raises(CorruptImageError, match="truncated JPEG"):
        load_image(_write_bytes(tmp_path / "cut_end.jpg", whole[:-2]))  # only the final marker missing


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
