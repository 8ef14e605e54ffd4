"""Out-of-scope images in the viewer (no verdict; results only on explicit request, marked
not valid), the call and flags shown the same way by the text and the bars, the Grad-CAM
scale, and the lung outline toggle."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from desktop.core.messages import call_text
from desktop.viewer.convert import qimage_array
from engine.ai.cam import NEGLIGIBLE_EVIDENCE


def grab_view(win) -> np.ndarray:
    win.display.flush()
    QApplication.processEvents()
    return qimage_array(win.view.viewport().grab().toImage())


@pytest.fixture
def ct_path(pydicom_file) -> Path:
    return pydicom_file("CT_small.dcm")


@pytest.fixture
def blank_png(tmp_path: Path) -> Path:
    """A uniform grey image: nothing to analyse."""
    out = tmp_path / "blank.png"
    assert cv2.imwrite(str(out), np.full((512, 512), 128, np.uint8))
    return out


def assert_nothing_shown(win) -> None:
    """An out-of-scope result before "show anyway": banner, no bars, no heatmap."""
    probs = win.analysis.probs
    assert probs.out_of_scope() and not probs.shown_anyway()
    assert probs.bars() == []
    assert not probs.show_anyway.isHidden() and not probs.show_anyway.isChecked()
    assert probs.invalid.isHidden() and not probs.low_confidence_shown()
    assert not win.display.has_heatmaps() and not win.view.overlay_visible()
    assert not win.analysis.cam.classes.isEnabled()


@pytest.mark.parametrize("which", ["ct", "blank"])
def test_out_of_scope_shows_banner_and_no_verdict(window, open_wait, ct_path: Path, blank_png: Path,
                                                  png_path: Path, which: str) -> None:
    path = ct_path if which == "ct" else blank_png
    window.display.cam_toggle.setChecked(True)
    open_wait(window, path)
    pred = window.prediction
    assert pred is not None and not pred.in_scope and pred.call == ""
    if which == "ct":
        assert pred.scope.kind == "modality" and "DICOM modality CT" in pred.scope.reason
    else:
        assert pred.scope.kind == "blank"
    probs = window.analysis.probs
    assert probs.banner.text() == f"Not analysed: {pred.scope.reason}"
    assert window.view.banner() == f"Not analysed: {pred.scope.reason}"
    assert "not analysed" in window.analysis.state.text() and "call" not in window.analysis.state.text()
    assert_nothing_shown(window)
    plain = grab_view(window)
    # the explicit request: bars and heatmap, marked NOT VALID, and still no call
    probs.show_anyway.click()
    assert probs.shown_anyway()
    assert [lab for lab, _ in probs.bars()] == list(pred.labels)  # the card's order
    assert probs.call_bar() == "" and probs.flagged_bars() == []
    assert all(b.invalid and "(call)" not in b.title() for b in probs.bar_widgets())
    assert not probs.invalid.isHidden() and "NOT VALID for this image" in probs.invalid.text()
    assert "NOT VALID for this image" in window.view.banner()
    assert window.display.has_heatmaps()
    assert "NOT VALID" in window.analysis.cam.classes.currentText()
    if window.display.no_evidence():
        assert "no evidence" in window.view.note()
    else:
        assert window.view.overlay_visible()
        assert np.abs(grab_view(window).astype(int) - plain.astype(int)).mean() > 0.5  # the heatmap is drawn
    # pressing it again hides them
    probs.show_anyway.click()
    assert_nothing_shown(window)
    assert window.view.banner().startswith("Not analysed")
    # shown again, then another image: hidden again (the next image is in scope: a verdict)
    probs.show_anyway.click()
    open_wait(window, png_path)
    assert window.prediction.in_scope
    assert not probs.out_of_scope() and probs.show_anyway.isHidden() and probs.invalid.isHidden()
    assert window.view.banner() == ""
    assert probs.call_bar() == window.prediction.call
    # and back to the out-of-scope image: hidden again, not remembered as shown
    open_wait(window, path)
    assert_nothing_shown(window)


def test_call_text_and_highlighted_bar_agree(window, open_wait, png_path: Path, dicom_dir: Path) -> None:
    for path in (png_path, dicom_dir / "RG1_J2KI.dcm"):
        open_wait(window, path)
        p = window.prediction
        assert p.in_scope and p.call
        probs = window.analysis.probs
        prob = float(p.probs[p.labels.index(p.call)])
        assert call_text(p.call, prob, p.flags) in window.analysis.state.text()
        assert probs.call_bar() == p.call
        assert sorted(probs.flagged_bars()) == sorted(p.flags)
        titles = [b.title() for b in probs.bar_widgets()]
        assert sum("(call)" in t for t in titles) == 1 and not any("(top)" in t for t in titles)
        assert window.analysis.cam.classes.currentText() == f"{p.call} (call)"
        assert window.view.banner() == ""


def test_bars_show_the_given_call_and_flags(qtbot) -> None:
    """The panel draws the decision it is given (engine.decide), not its own."""
    from desktop.analysis.prob_panel import ProbPanel

    panel = ProbPanel()
    qtbot.addWidget(panel)
    panel.set_prediction(["a", "b", "c"], [0.3, 0.6, 0.1], {"a": 0.25, "b": 0.5, "c": 0.5}, call="b",
                         flags=("b", "a"))
    assert panel.call_bar() == "b" and panel.flagged_bars() == ["a", "b"]
    assert [b.title() for b in panel.bar_widgets()] == ["a  · flagged", "b  (call)  · flagged", "c"]
    assert not panel.low_confidence_shown()
    panel.set_out_of_scope("the image is blank.", ["a", "b"], [0.9, 0.1])
    assert panel.bars() == [] and panel.banner.text() == "Not analysed: the image is blank."


def test_study_browser_says_out_of_scope(window, qtbot, tmp_path: Path, ct_path: Path, blank_png: Path,
                                         cxr_samples: dict[str, list[Path]]) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    chest = cxr_samples["normal"][0]
    shutil.copy(chest, folder / f"a_{chest.name}")
    shutil.copy(ct_path, folder / "b_ct.dcm")
    shutil.copy(blank_png, folder / "c_blank.png")
    with qtbot.waitSignal(window.analysisFinished, timeout=20000):
        window.open_paths([str(folder)])
    browser = window.study.browser
    qtbot.waitUntil(lambda: browser.count() == 3 and all(browser.status(i) != "pending" for i in range(3)),
                    timeout=30000)
    rows = {os.path.basename(p): i for i, p in enumerate(browser.paths())}
    for name, kind in (("b_ct.dcm", "DICOM modality CT"), ("c_blank.png", "blank")):
        i = rows[name]
        assert browser.status(i) == "analysed" and browser.label(i) == ""
        assert browser.text(i).splitlines()[1] == "out of scope"
        assert kind in browser.scope_reason(i) and kind in browser.tooltip(i)
    first = rows[f"a_{chest.name}"]  # the viewer's own result (the window's study.analysed call)
    assert browser.label(first) == window.prediction.call and browser.scope_reason(first) == ""
    assert "out of scope" not in browser.text(first)
    assert "1 analysed, 2 out of scope" in browser.summary.text()
    # the viewer's own out-of-scope result says the same
    with qtbot.waitSignal(window.analysisFinished, timeout=20000):
        browser.list.setCurrentRow(rows["b_ct.dcm"])
    assert browser.text(rows["b_ct.dcm"]).splitlines()[1] == "out of scope"
    assert "DICOM modality CT" in browser.tooltip(rows["b_ct.dcm"])


# -- the Grad-CAM scale ------------------------------------------------------------------------
@pytest.fixture
def scaled_model(tmp_path_factory: pytest.TempPathFactory):
    """A tiny model whose card carries a model-wide ``cam_scale``."""
    from tinymodel import build_tiny_model, tiny_card

    def make(scale: float) -> Path:
        path = tmp_path_factory.mktemp("scaled") / f"tiny-scale-{scale:g}.onnx"
        return build_tiny_model(path, card=tiny_card(cam_scale=scale))

    return make


def test_cam_scale_is_said_in_the_legend(window, open_wait, png_path: Path) -> None:
    open_wait(window, png_path)
    note = window.analysis.cam.scale_note.text()
    assert not window.analysis.cam.scale_note.isHidden()
    assert "relative to this image's strongest class" in note.lower()


def test_negligible_evidence_is_no_evidence_not_a_blob(make_window, open_wait, scaled_model, png_path: Path) -> None:
    # a model-wide scale far above this image's evidence: every class is negligible
    win = make_window(model=scaled_model(1e6))
    win.display.cam_toggle.setChecked(True)
    open_wait(win, png_path)
    assert "fixed scale for this model" in win.analysis.cam.scale_note.text().lower()
    assert win.display.has_heatmaps() and win.display.no_evidence()
    assert not win.view.overlay_visible()  # no blob
    assert "no evidence for this class" in win.view.note()
    assert "no evidence for this class" in win.analysis.cam.evidence_note.text()
    before = grab_view(win)
    win.analysis.cam.set_class_index((win.analysis.cam.class_index() + 1) % 4)
    assert not win.view.overlay_visible() and np.array_equal(grab_view(win), before)
    win.display.cam_toggle.setChecked(False)
    assert win.view.note() == ""  # the note belongs to the shown heatmap


def test_shared_scale_draws_weak_classes_faint(window, open_wait, png_path: Path) -> None:
    """Without a model scale every class is drawn on the top class's scale: a class with
    less evidence is drawn with less alpha, never stretched to full intensity."""
    open_wait(window, png_path)
    r = window._result
    top = window.prediction.top_index
    assert r.cam_scale is not None and r.evidence[top] == pytest.approx(1.0)
    for i, (rgba, ev) in enumerate(zip(r.heat, r.evidence, strict=True)):
        peak = rgba[:, :, 3].max() / 255.0
        if ev < NEGLIGIBLE_EVIDENCE:
            assert peak == 0.0, i
        else:
            assert peak <= min(1.0, ev) + 0.02, i


# -- the lung outline --------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeLungs:
    """What the viewer uses of ``engine.ai.lungs.LungField``."""

    mask: np.ndarray
    plausible: bool = True
    reason: str = ""


class FakeSegmenter:
    """Two rectangles as lung fields, at image size."""

    def segment(self, pixels: np.ndarray) -> FakeLungs:
        h, w = pixels.shape[:2]
        mask = np.zeros((h, w), bool)
        mask[h // 5 : h * 4 // 5, w // 8 : w * 3 // 8] = True
        mask[h // 5 : h * 4 // 5, w * 5 // 8 : w * 7 // 8] = True
        return FakeLungs(mask)


def test_lung_outline_toggle(window, open_wait, dicom_dir: Path, png_path: Path, settings_path: str,
                             make_window, monkeypatch: pytest.MonkeyPatch) -> None:
    lung = window.display.lung_toggle
    assert lung.shortcut().toString() == "L" and lung.isCheckable()
    assert lung in window.menuBar().actions()[1].menu().actions()  # in the View menu
    # the bundled lung model gives every analysed image a lung field
    open_wait(window, png_path)
    real = window.prediction.lungs
    if real is not None:
        assert real.mask.shape == window.prediction.image.shape and lung.isEnabled()
    # no lung model at all: nothing to outline, the toggle is disabled
    monkeypatch.setenv("RADLENS_LUNGSEG", "off")
    open_wait(window, dicom_dir / "CR-MONO1-10-chest.dcm")
    assert window.prediction.lungs is None and not lung.isEnabled()
    lung.setChecked(True)
    assert not window.view.lung_outline_visible()
    # a lung field: drawn, aligned with the image at every zoom
    window.classifier.segmenter = FakeSegmenter()
    path = dicom_dir / "RG1_J2KI.dcm"
    open_wait(window, path)
    mask = window.prediction.lungs.mask
    assert lung.isEnabled() and window.view.lung_outline_visible()
    item = window.view.lung_outline_item()
    h, w = mask.shape
    rect = item.mapRectToParent(item.boundingRect())  # image coordinates
    assert abs(rect.left() - w // 8) <= 2 and abs(rect.right() - w * 7 // 8) <= 2
    assert abs(rect.top() - h // 5) <= 2 and abs(rect.bottom() - h * 4 // 5) <= 2
    image_item = item.parentItem()
    for act in (window.display.fit, window.display.actual, window.display.zoom_in, window.display.zoom_out):
        act.trigger()
        expect = window.view.mapFromScene(image_item.mapRectToScene(rect)).boundingRect()
        got = window.view.mapFromScene(item.sceneBoundingRect()).boundingRect()
        assert abs(expect.left() - got.left()) <= 2 and abs(expect.top() - got.top()) <= 2
    window.display.fit.trigger()
    window.display.cam_toggle.setChecked(False)
    with_outline = grab_view(window)
    lung.trigger()  # the L action
    assert not window.view.lung_outline_visible()
    without = grab_view(window)
    diff = np.abs(with_outline.astype(int) - without.astype(int)).sum(axis=2)
    assert (diff > 60).sum() > 200  # a visible outline
    lung.trigger()
    assert window.view.lung_outline_visible()
    # another image without a lung field: no outline
    window.classifier.segmenter = None
    open_wait(window, png_path)
    assert not window.view.lung_outline_visible() and not lung.isEnabled() and lung.isChecked()
    window.close()
    from desktop.settings import Settings

    assert Settings(settings_path).lungs_visible is True
    win2 = make_window()
    assert win2.display.lung_toggle.isChecked()
