"""Compare mode: two real images side by side, each analysed by the bundled model through the
same worker job, linked zoom/pan/window-level (and unlinked), and back to the single view."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from engine import Window, classify, default_model_path, load_image


@pytest.fixture
def study(cxr_samples: dict[str, list[Path]], dicom_dir: Path) -> list[str]:
    """A DICOM chest film and two real JPEG radiographs."""
    return [str(dicom_dir / "CR-MONO1-10-chest.dcm"), str(cxr_samples["pneumonia"][0]), str(cxr_samples["normal"][0])]


@pytest.fixture
def win(make_window, qtbot, study: list[str]):
    """The window with the bundled default model, the study open, its first image analysed."""
    w = make_window(model=default_model_path())
    with qtbot.waitSignal(w.analysisFinished, timeout=30000):
        w.open_paths(study)
    return w


def compare_with(qtbot, win, path: str) -> None:
    with qtbot.waitSignal(win.compare.analysisFinished, timeout=30000,
                          check_params_cb=lambda p: os.path.abspath(p) == os.path.abspath(path)):
        win.compare.enter(path)
    qtbot.wait(50)  # the splitter lays the two sides out


def test_compare_shows_two_images_each_with_its_own_result(win, qtbot, study: list[str], dialogs) -> None:
    win.display.cam_toggle.setChecked(True)
    qtbot.wait(50)
    scale_before = win.view.scale_factor()
    size_before = win.view.size()
    window_before = win.display.effective_window()
    cmp = win.compare
    assert not cmp.leave.isEnabled() and cmp.link.isChecked()  # linked by default
    keys_before = sorted(k.toString() for a in win.all_actions() for k in a.shortcuts())
    dialogs.choices = [f"1. {os.path.basename(study[1])}"]
    with qtbot.waitSignal(cmp.analysisFinished, timeout=30000):
        cmp.choose()
    assert dialogs.choices_offered == [[f"1. {os.path.basename(study[1])}", f"2. {os.path.basename(study[2])}"]]
    assert cmp.active and win.centralWidget() is cmp.widget and cmp.leave.isEnabled()
    assert cmp.left.view is win.view and cmp.right.view is cmp.other_view
    # the second side's view actions do not add a second set of the same keys
    assert sorted(k.toString() for a in win.all_actions() for k in a.shortcuts()) == keys_before
    left, right = win.prediction, cmp.result.prediction
    assert os.path.abspath(left.path) == os.path.abspath(study[0])
    assert os.path.abspath(right.path) == os.path.abspath(study[1])
    # the right side is the engine's own per-image job, with the same model
    direct = classify(load_image(study[1]), win.classifier)
    assert np.allclose(right.probs, direct.probs, atol=1e-6) and right.call == direct.call
    assert not np.allclose(left.probs, right.probs)
    # each side says its own call and probabilities, and draws its own heatmap
    assert f"Call: {left.call}" in cmp.left.summary.text() and cmp.left.title.text() == os.path.basename(study[0])
    assert f"Call: {right.call}" in cmp.right.summary.text()
    assert all(lab in cmp.right.summary.text() for lab in right.labels)
    assert win.view.overlay_visible() and cmp.other_view.overlay_visible()
    assert not cmp.other_view.overlay_item().pixmap().toImage() == win.view.overlay_item().pixmap().toImage()
    win.display.cam_toggle.setChecked(False)  # the heatmap toggle applies to both sides
    assert not cmp.other_view.overlay_visible()
    # leaving compare: the single view, as it was
    cmp.exit()
    qtbot.wait(50)
    assert not cmp.active and win.centralWidget() is win.view and win.view.isVisible()
    assert os.path.abspath(win.current_path) == os.path.abspath(study[0])
    assert win.display.effective_window() == window_before
    assert win.view.size() == size_before  # the whole centre again
    assert win.view.scale_factor() == pytest.approx(scale_before, rel=1e-3)  # fitted to it again
    assert not cmp.leave.isEnabled()


def test_linked_zoom_pan_and_window_follow_unlinked_do_not(win, qtbot, study: list[str]) -> None:
    cmp = win.compare
    compare_with(qtbot, win, study[2])
    left_view, right_view = win.view, cmp.other_view
    # zoom and pan: the right side shows the same part of its image at the same relative zoom
    left_view.zoom_by(2.0)
    left_view.horizontalScrollBar().setValue(left_view.horizontalScrollBar().value() + 40)
    left_view.verticalScrollBar().setValue(left_view.verticalScrollBar().value() - 30)
    a, b = cmp.place(left_view), cmp.place(right_view)
    assert a.rel_zoom == pytest.approx(2.0, rel=0.02) and b.rel_zoom == pytest.approx(a.rel_zoom, rel=0.01)
    assert b.cx == pytest.approx(a.cx, abs=0.01) and b.cy == pytest.approx(a.cy, abs=0.01)
    # and the other way round
    right_view.zoom_by(1.25)
    assert cmp.place(left_view).rel_zoom == pytest.approx(cmp.place(right_view).rel_zoom, rel=0.01)
    # window/level: a preset by name (each image on its own statistics), a custom window relative
    # to each image's default window, inversion
    win.display.apply_preset("Lung")
    win.display.flush()
    assert cmp.other.window == cmp.other.src.preset("Lung")
    ld, rd = win.display.src.default_window, cmp.other.src.default_window
    win.display.set_window(Window(ld.center + 0.1 * ld.width, ld.width * 0.5, "LINEAR_EXACT", "Custom"))
    win.display.flush()
    w = cmp.other.window
    assert w.width == pytest.approx(rd.width * 0.5) and w.center == pytest.approx(rd.center + 0.1 * rd.width)
    win.display.set_invert(True)
    win.display.flush()
    assert cmp.other.invert
    cmp.other.apply_preset("Bone")  # the right side's own W/L bar or right-drag moves the left too
    cmp.other.flush()
    assert win.display.window == win.display.src.preset("Bone")
    # unlinked: each side on its own
    cmp.link.setChecked(False)
    right_place, right_window = cmp.place(right_view), cmp.other.window
    left_view.zoom_by(1.5)
    win.display.apply_preset("Mediastinum")
    win.display.flush()
    assert cmp.place(right_view) == right_place and cmp.other.window == right_window
    assert cmp.place(left_view).rel_zoom != pytest.approx(right_place.rel_zoom, rel=0.01)
    # linked again: the right side catches up with the left
    cmp.link.setChecked(True)
    assert cmp.other.window == cmp.other.src.preset("Mediastinum")
    assert cmp.place(right_view).rel_zoom == pytest.approx(cmp.place(left_view).rel_zoom, rel=0.01)


def test_previous_image_out_of_scope_side_and_clear_errors(win, qtbot, study: list[str], dialogs,
                                                           pydicom_file, tmp_path: Path, open_wait) -> None:
    cmp = win.compare
    cmp.with_previous()  # the first image has no previous one
    assert not cmp.active and "no previous image" in dialogs.errors[-1][1]
    with qtbot.waitSignal(win.analysisFinished, timeout=30000):
        win.study.browser.move(1)  # the second image of the study
    with qtbot.waitSignal(cmp.analysisFinished, timeout=30000):
        cmp.with_previous()
    assert os.path.abspath(cmp.other_path) == os.path.abspath(study[0])
    assert cmp.right.state == cmp.left.state == "in"
    # a side the model was not built for: the banner says why, no call, no heatmap
    ct = tmp_path / "ct.dcm"
    ct.write_bytes(pydicom_file("CT_small.dcm").read_bytes())
    win.study.add(str(ct))
    compare_with(qtbot, win, str(ct))
    assert not cmp.result.prediction.in_scope
    assert cmp.other_view.banner().startswith("Not analysed:") and cmp.right.state == "out"
    assert "No call" in cmp.right.summary.text() and not cmp.other_view.overlay_visible()
    # a file that went away, and an image that cannot be read: said, nothing breaks
    n = len(dialogs.errors)
    cmp.enter(str(tmp_path / "gone.dcm"))
    assert "does not exist" in dialogs.errors[n][1]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    compare_with(qtbot, win, str(bad))
    assert cmp.right.state == "error" and "Cannot open" in cmp.right.summary.text()
    cmp.exit()
    assert win.centralWidget() is win.view
    # nothing open: nothing to compare with
    empty = win.__class__(win.settings, dialogs=dialogs)
    qtbot.addWidget(empty)
    empty.compare.compare_with.trigger()
    assert "Open an image first" in dialogs.errors[-1][1] and not empty.compare.active


def test_right_side_out_of_scope_show_anyway(win, qtbot, study: list[str], pydicom_file, tmp_path: Path) -> None:
    """As in the single view: an out-of-scope image on the right has no verdict, and its
    probabilities and heatmap only on "Show anyway", marked not valid; a new image hides them."""
    from desktop.analysis.prob_panel import HIDE_AGAIN, SHOW_ANYWAY
    from desktop.core.report_text import pct
    from desktop.viewer.convert import qimage_array

    cmp = win.compare
    win.display.cam_toggle.setChecked(True)
    ct = tmp_path / "ct.dcm"  # a real CT slice: the model is for chest radiographs
    ct.write_bytes(pydicom_file("CT_small.dcm").read_bytes())
    win.study.add(str(ct))
    compare_with(qtbot, win, str(ct))
    p = cmp.result.prediction
    assert not p.in_scope and "DICOM modality CT" in p.scope.reason
    button = cmp.right.anyway

    def nothing_shown() -> None:
        assert button.isVisible() and not button.isChecked() and button.text() == SHOW_ANYWAY
        assert cmp.other_view.banner() == f"Not analysed: {p.scope.reason}" and cmp.right.state == "out"
        assert "No call" in cmp.right.summary.text() and "%" not in cmp.right.summary.text()
        assert not cmp.other.has_heatmaps() and not cmp.other_view.overlay_visible()

    nothing_shown()
    button.click()
    assert button.text() == HIDE_AGAIN and cmp.right.state == "invalid"
    assert cmp.other_view.banner().startswith("NOT VALID for this image") and p.scope.reason in cmp.other_view.banner()
    summary = cmp.right.summary.text()
    assert "No call" in summary and "NOT VALID" in summary
    assert all(f"{lab} {pct(float(x))}" in summary for lab, x in zip(p.labels, p.probs, strict=True))
    assert cmp.other.has_heatmaps()
    if cmp.other.no_evidence():
        assert "no evidence" in cmp.other_view.note()
    else:
        assert cmp.other_view.overlay_visible()
        heat = qimage_array(cmp.other_view.overlay_item().pixmap().toImage())
        assert heat[..., 3].max() > 0  # a heatmap is drawn over the CT, over its whole image
        assert cmp.other_view.overlay_item().boundingRect().size() == cmp.other_view.image_item().boundingRect().size()
    assert win.view.banner() == "" and cmp.left.state == "in"  # the left side is not touched
    button.click()  # hidden again
    nothing_shown()
    # shown, then another image (in scope): no button, a verdict; back to the CT: hidden again
    button.click()
    compare_with(qtbot, win, study[1])
    assert cmp.result.prediction.in_scope and not button.isVisible() and not button.isChecked()
    assert cmp.right.state == "in" and cmp.other_view.banner() == ""
    compare_with(qtbot, win, str(ct))
    nothing_shown()
    # the left header follows the single view's own "Show anyway"
    with qtbot.waitSignal(win.analysisFinished, timeout=30000):
        win.study.browser.move(len(study))  # the CT, now the current image too
    assert cmp.left.state == "out" and "%" not in cmp.left.summary.text()
    win.analysis.probs.show_anyway.click()
    assert cmp.left.state == "invalid" and "NOT VALID" in cmp.left.summary.text()
    assert button.isVisible() and not button.isChecked()  # each side has its own
