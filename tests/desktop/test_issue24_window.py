"""Issue 24, "The window": items 13 (the exported PNG's notice strip below the picture, never
over the AI call line and never cut off), 15 (menus and dialogs leave the image as it was drawn)
and 19 (the heatmap transparent where the evidence is low, one alpha ramp everywhere)."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QRect, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QFontMetrics, QImage, QPainter
from PySide6.QtWidgets import QApplication, QMenu

from desktop.core.windowing import heat_rgba, legend_rgb
from desktop.export.export import (
    MIN_EXPORT_WIDTH,
    NOTICE_BG,
    NOTICE_MIN_PX,
    burn_notice,
    grab,
    heat_picture,
    notice_layout,
)
from desktop.viewer.convert import gray_qimage, qimage_array, rgba_qimage
from desktop.viewer.image_view import ImageView
from engine import DISCLAIMER, Classifier, classify, default_model_path, load_image
from engine.ai.cam import ALPHA_FLOOR, ALPHA_FULL, card_cam_scale, colorize, heat_alpha, heatmap, overlay

NOTICE_RGB = np.array([NOTICE_BG.red(), NOTICE_BG.green(), NOTICE_BG.blue()])
SHORT = "film.png · radlens-cxr4 3.0.0 · Call: normal (99.2%). At or above the operating point: none."
COMPARE = (f"Left: {SHORT}  |  Right: other-film-with-a-long-name.dcm · radlens-cxr4 3.0.0 · Call: pneumonia "
           "(87.0%). At or above the operating point: pneumonia, tuberculosis.")
UNBROKEN = "a_file_name_without_any_space_" * 6 + ".dcm · Call: covid (59.2%)."
SIZES = [(64, 64), (600, 900), (1400, 700), (3000, 3000), (150, 1200)]


def rgb(img: QImage) -> np.ndarray:
    return qimage_array(img)[..., :3].astype(np.int16)


@pytest.fixture
def film_path(cxr_samples: dict[str, list[Path]]) -> Path:
    return cxr_samples["normal"][0]


def film(path: Path, w: int, h: int) -> QImage:
    """A real radiograph at ``w`` x ``h``."""
    u8 = (load_image(path).pixels * 255).round().astype(np.uint8)
    return gray_qimage(cv2.resize(u8, (w, h), interpolation=cv2.INTER_AREA))


# -- item 13: the notice strip of the exported PNG ------------------------------------------
def lines_of(lay):  # noqa: ANN001, ANN201 - NoticeLayout
    return [(r, t, lay.notice_font) for r, t in lay.notice] + [(r, t, lay.caption_font) for r, t in lay.caption]


@pytest.mark.parametrize(("size", "caption"), list(itertools.product(SIZES, [SHORT, COMPARE, UNBROKEN, ""])))
def test_strip_lines_never_overlap_the_picture_or_each_other_and_fit(qapp, size: tuple[int, int],
                                                                     caption: str) -> None:
    w, h = size
    lay = notice_layout(QSize(w, h), caption)
    canvas = QRect(0, 0, lay.size.width(), lay.size.height())
    assert lay.size.width() == max(w, MIN_EXPORT_WIDTH)
    assert lay.image.size() == QSize(w, h) and canvas.contains(lay.image)  # the picture whole, at its size
    assert lay.strip.top() == h and lay.strip.bottom() == canvas.bottom() and lay.strip.width() == canvas.width()
    lines = lines_of(lay)
    assert lay.notice and bool(lay.caption) == bool(caption)
    for rect, text, font in lines:
        assert canvas.contains(rect) and lay.strip.contains(rect) and not rect.intersects(lay.image)
        fm = QFontMetrics(font)
        assert fm.horizontalAdvance(text) <= rect.width(), text  # nothing runs past its rect
        assert rect.height() >= fm.height()  # nor above or below it
    for (a, _, _), (b, _, _) in itertools.combinations(lines, 2):
        assert not a.intersects(b)
    # every word of the notice is there, in order, whatever the width; the caption too
    assert " ".join(t for _, t in lay.notice) == f"{DISCLAIMER}."
    assert lay.notice_font.pixelSize() >= NOTICE_MIN_PX and lay.notice_font.bold()
    if caption:
        assert "".join(t for _, t in lay.caption).replace(" ", "") == caption.replace(" ", "")


def test_a_huge_caption_is_elided_not_cut(qapp) -> None:
    lay = notice_layout(QSize(400, 300), " ".join([COMPARE] * 8))
    assert len(lay.caption) == 6 and lay.caption[-1][1].endswith("…")
    assert all(not a.intersects(b) for (a, _), (b, _) in itertools.combinations(lay.notice + lay.caption, 2))


@pytest.mark.parametrize("size", SIZES)
def test_burnt_png_has_the_picture_untouched_and_the_text_inside_the_strip(qapp, film_path: Path,
                                                                            size: tuple[int, int]) -> None:
    w, h = size
    shot = film(film_path, w, h)
    out = burn_notice(shot, COMPARE)
    lay = notice_layout(shot.size(), COMPARE)
    assert out.size() == lay.size
    a = rgb(out)
    x0 = lay.image.left()
    assert np.array_equal(a[:h, x0 : x0 + w], rgb(shot))  # no pixel of the picture is covered
    strip = a[h:]
    is_bg = np.abs(strip - NOTICE_RGB).max(axis=2) <= 1
    # outside the lines' rects the strip is the plain notice colour: no text spills out of a line
    outside = np.ones(is_bg.shape, bool)
    for rect, _, _ in lines_of(lay):
        outside[rect.top() - h : rect.bottom() + 1 - h, rect.left() : rect.right() + 1] = False
        inside = a[rect.top() : rect.bottom() + 1, rect.left() : rect.right() + 1]
        assert (inside.min(axis=2) > 200).sum() > 10  # white text drawn in each line
    assert is_bg[outside].all()
    assert is_bg[: lay.notice[0][0].top() - h].all()  # the strip starts right under the picture


@pytest.mark.parametrize("size", [(1200, 800), (760, 900)])
def test_exported_png_keeps_the_corner_ai_line_above_the_strip(window, open_wait, qtbot, png_path: Path,
                                                              tmp_path: Path, size: tuple[int, int]) -> None:
    win = window
    win.resize(*size)
    win.corner.toggle.setChecked(True)
    open_wait(win, png_path)
    qtbot.wait(50)
    ai = [lab for lab in win.corner.labels.values() if lab.isVisible() and "AI:" in lab.text()]
    assert ai, "the corner text shows the AI call"
    out = tmp_path / "v.png"
    assert win.exporter.export_png(str(out)) == str(out)
    got = rgb(QImage(str(out)))
    shot = grab(win.centralWidget())
    vw, vh = shot.width(), shot.height()
    assert got.shape[1] == max(vw, MIN_EXPORT_WIDTH) and got.shape[0] > vh
    assert np.array_equal(got[:vh, :vw], rgb(shot))  # the view as shown, the AI corner line included
    g = ai[0].geometry()
    assert g.bottom() < vh  # ... and that line lies in the picture, which the strip no longer covers
    assert (np.abs(got[vh:] - NOTICE_RGB).max(axis=2) <= 1).mean() > 0.6


# -- item 19: the alpha ramp -------------------------------------------------------------------
def test_heat_alpha_is_zero_for_low_evidence_and_the_opacity_at_full() -> None:
    heat = np.linspace(0, 1, 101, dtype=np.float32)
    a = heat_alpha(heat, 0.45)
    assert a.dtype == np.float32 and np.all(np.diff(a) >= 0)
    assert np.all(a[heat <= ALPHA_FLOOR] == 0) and np.allclose(a[heat >= ALPHA_FULL], 0.45 * heat[heat >= ALPHA_FULL])
    assert a[-1] == np.float32(0.45) and np.all(a <= 0.45 * heat + 1e-7)  # full only at the top; never above the heat
    assert 0 < heat_alpha(np.float32((ALPHA_FLOOR + ALPHA_FULL) / 2)) < 1
    assert heat_alpha(np.array([np.nan], np.float32)).tolist() == [0.0]
    assert not heat_alpha(np.zeros((4, 4), np.float32)).any()  # no evidence at all: transparent
    weak = heat * np.float32(0.2)  # a weak map (peak 0.2 of the scale, not negligible): still shows at its peak
    wa = heat_alpha(weak, 0.45)
    assert np.all(wa[weak <= 0.1] == 0) and 0 < wa[-1] < 0.45 * 0.5
    legend = legend_rgb(256, 4).astype(int)
    assert np.abs(legend[:, :40] - 128).max() <= 1 and (legend[:, -1] != 128).any()  # low end: the film shows


def synthetic_cam(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A CAM at the model's input size: 0 everywhere but a block at the scale (1.0), and the
    resulting heat at image size."""
    cam = np.zeros((2, 14, 14), np.float32)
    cam[0, 4:9, 3:8] = 2.0  # 2 CAM units, the scale below: heat 1.0
    heat = heatmap(cam, 0, shape, (224, 224), "stretch", scale=2.0)
    return cam, heat


def scene_composite(u8: np.ndarray, rgba: np.ndarray, opacity: float) -> np.ndarray:
    """The film with the overlay as the view draws it (its scene rendered 1:1)."""
    view = ImageView()
    view.set_image(gray_qimage(u8))
    view.set_overlay(rgba_qimage(rgba))
    view.set_overlay_visible(True)
    view.set_overlay_opacity(opacity)
    h, w = u8.shape
    out = QImage(w, h, QImage.Format.Format_RGB32)
    out.fill(0)
    p = QPainter(out)
    view.scene().render(p, QRectF(0, 0, w, h), QRectF(0, 0, w, h))
    p.end()
    view.deleteLater()
    return rgb(out)


class _Shown:
    """What ``heat_picture`` (the PDF's Grad-CAM picture) asks of the display."""

    def __init__(self, u8: np.ndarray) -> None:
        self.u8 = u8

    def displayed(self) -> np.ndarray:
        return self.u8

    def no_evidence(self, _i: int) -> bool:
        return False


def test_zero_evidence_leaves_the_film_unchanged_and_full_evidence_is_at_the_opacity(qapp, film_path: Path) -> None:
    im = load_image(film_path)
    u8 = (im.pixels * 255).round().astype(np.uint8)
    cam, heat = synthetic_cam(u8.shape)
    rgba = heat_rgba(cam, 0, u8.shape, (224, 224), "stretch", scale=2.0)
    opacity = 0.45
    base = np.repeat(u8[:, :, None].astype(np.int16), 3, axis=2)
    cold, hot = heat <= ALPHA_FLOOR, heat >= 0.999
    assert cold.mean() > 0.5 and hot.sum() > 500
    expect_hot = base * (1 - opacity) + colorize(np.ones(1, np.float32))[0] * opacity
    pictures = {
        "screen (and the PNG export, a grab of it)": scene_composite(u8, rgba, opacity),
        "PDF": rgb(heat_picture(_Shown(u8), (rgba,), 0, opacity)),
        "DICOM capture": overlay(im.pixels, heat, opacity).astype(np.int16),
    }
    for name, got in pictures.items():
        assert np.array_equal(got[cold], base[cold]), name  # the film, untouched
        assert np.abs(got[hot] - expect_hot[hot]).max() <= 2, name  # the tint at the chosen opacity


@pytest.fixture(scope="module")
def bundled() -> Classifier:
    return Classifier(default_model_path(), device="cpu")


def test_a_normal_film_is_not_tinted_blue_or_dimmed(bundled: Classifier, cxr_samples) -> None:
    scale = card_cam_scale(bundled.card)
    for path in cxr_samples["normal"][:3]:
        im = load_image(path)
        p = classify(im, bundled)
        heat = heatmap(p.cam, p.top_index, im.shape, p.input_size, p.resize, box=p.box, scale=scale)
        shown = overlay(im.pixels, heat, 0.45).astype(np.int16)
        base = np.repeat(np.round(im.pixels * 255)[:, :, None], 3, axis=2).astype(np.int16)
        untouched = (np.abs(shown - base).max(axis=2) <= 1).mean()
        blue = ((shown[..., 2] - shown[..., 0]) > 15).mean()
        assert untouched > 0.65 and blue < 0.03, (path.name, untouched, blue)  # was 0.26-0.56 and 0.11-0.25


# -- item 15: menus and dialogs leave the image as it was -------------------------------------
def view_state(view: ImageView) -> tuple:
    t = view.transform()
    c = view.mapToScene(view.viewport().rect().center())
    return (round(t.m11(), 6), round(t.m22(), 6), view.viewport().size().toTuple(), round(c.x(), 2), round(c.y(), 2))


def test_menus_and_dialogs_leave_the_view_as_it_was(window, open_wait, qtbot, png_path: Path) -> None:
    win = window
    open_wait(win, png_path)
    qtbot.wait(50)
    before, picture = view_state(win.view), rgb(grab(win.view))
    menus = [m for m in win.menuBar().findChildren(QMenu) if m.menuAction() in win.menuBar().actions()]
    assert len(menus) >= 4
    for menu in menus:
        menu.popup(win.menuBar().mapToGlobal(win.menuBar().actionGeometry(menu.menuAction()).bottomLeft()))
        qtbot.waitUntil(menu.isVisible, timeout=2000)
        for a in menu.actions():
            if a.isEnabled() and not a.isSeparator():
                menu.setActiveAction(a)  # its status tip in the status bar
                qtbot.wait(5)
        assert view_state(win.view) == before, menu.title()
        assert np.array_equal(rgb(grab(win.view)), picture), menu.title()
        menu.close()
        qtbot.wait(20)
        assert view_state(win.view) == before, menu.title()
    for act in (win.commands.card, win.commands.shortcuts, win.commands.about):
        seen: dict[str, object] = {}

        def look(seen: dict[str, object] = seen) -> None:
            seen["state"], seen["picture"] = view_state(win.view), rgb(grab(win.view))
            modal = QApplication.activeModalWidget()
            seen["modal"] = modal is not None
            for w in QApplication.topLevelWidgets():
                if w is not win and w.isVisible() and w.isWindow() and w.windowType() == Qt.WindowType.Dialog:
                    w.close()

        QTimer.singleShot(300, look)
        act.trigger()
        qtbot.waitUntil(lambda seen=seen: "state" in seen, timeout=5000)
        qtbot.wait(50)
        assert seen["state"] == before, act.text()  # while the dialog is open
        assert np.array_equal(seen["picture"], picture), act.text()
        assert view_state(win.view) == before, act.text()  # and after
