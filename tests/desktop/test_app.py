"""The application: no model, loading and refusing models, model card, shortcuts,
exception hook, settings, command line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtGui import QImage, QKeySequence

from desktop.core.model_state import ModelState
from engine import DISCLAIMER


def test_opens_without_a_model_and_says_why(make_window, monkeypatch, tmp_path: Path, png_path: Path,
                                            open_wait) -> None:
    missing = tmp_path / "no-model-here.onnx"
    monkeypatch.setenv("RADLENS_MODEL", str(missing))  # the bundled default, wherever it is
    win = make_window(model=None)
    assert win.classifier is None and win.model_state is ModelState.NONE
    assert "Analysis is off" in win.model_reason and str(missing) in win.model_reason
    assert "Load model" in win.model_reason
    assert win.provider_label.text().startswith("No model")
    assert "Analysis is off" in win.analysis.model.text()
    assert not win.commands.card.isEnabled() and not win.commands.batch.isEnabled()
    open_wait(win, png_path)  # viewing still works
    assert win.view.has_image()
    assert "Analysis is off" in win.analysis.probs.message.text()
    assert win.analysis.probs.bars() == []
    assert win.study.browser.status(0) == "loaded"
    assert not win.analysis.spinner.is_spinning()


def test_startup_with_a_refused_model_says_why(make_window, tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_text("not a model")
    win = make_window(model=bad)
    assert win.classifier is None and win.model_state is ModelState.FAILED
    assert "refused" in win.model_reason and "not a loadable ONNX model" in win.model_reason


def test_load_model_refused_keeps_previous(window, dialogs, qtbot, tmp_path: Path) -> None:
    from tinymodel import build_tiny_model

    previous = window.classifier
    nocard = build_tiny_model(tmp_path / "nocard.onnx", card={})
    dialogs.models.append(str(nocard))
    window.commands.model.trigger()
    qtbot.waitUntil(lambda: bool(dialogs.errors), timeout=20000)
    title, text = dialogs.errors[-1]
    assert title == "Model refused"
    assert "has no model card" in text and "previous model stays in use" in text
    assert window.classifier is previous
    assert window.model_state is ModelState.READY and not window.model_reason  # not left "loading"


def test_load_another_model_reanalyses(window, dialogs, qtbot, tmp_path: Path, png_path: Path, open_wait,
                                       settings_path: str) -> None:
    from tinymodel import build_tiny_model

    from desktop.settings import Settings

    open_wait(window, png_path)
    other = build_tiny_model(tmp_path / "three.onnx", labels=("a", "b", "c"), seed=3)
    dialogs.models.append(str(other))
    with qtbot.waitSignal(window.analysisFinished, timeout=20000):
        window.commands.model.trigger()
    assert window.classifier.labels == ("a", "b", "c")
    assert sorted(lab for lab, _ in window.analysis.probs.bars()) == ["a", "b", "c"]
    assert Settings(settings_path).model_path == str(other)


def test_provider_in_status_bar(window) -> None:
    c = window.classifier
    assert c.device_label in window.provider_label.text()
    assert c.provider in window.provider_label.toolTip()
    if c.provider_note:  # CPU fallback: say why
        assert "fallback" in window.provider_label.text() and c.provider_note in window.provider_label.toolTip()


def test_model_card_dialog(window) -> None:
    dlg = window.show_model_card()
    text = dlg.text()
    for label in window.classifier.labels:
        assert label in text
    assert DISCLAIMER in text and "operating point" in text
    assert window.classifier.sha256 in text and "Training data" in text and "Test metrics" in text
    dlg.close()


def test_model_card_lists_confounders() -> None:
    from tinymodel import tiny_card

    from desktop.analysis.model_card import card_html
    from engine import ModelCard

    card = ModelCard.from_dict(tiny_card(labels=("a", "b"), size=8,
                                         training_data={"summary": "S", "confounders": ["all b are children"]},
                                         test_metrics={"accuracy": 0.9, "per_class": {"a": {"recall": 0.8}}}))
    html = card_html(card)
    assert "Known confounders" in html and "all b are children" in html and "recall" in html


def test_shortcuts_dialog_lists_every_shortcut(window) -> None:
    dlg = window.show_shortcuts()
    listed = {keys for _, keys in dlg.rows}
    shortcut_actions = [a for a in window.all_actions() if a.shortcuts()]
    assert len(shortcut_actions) >= 25
    for a in shortcut_actions:
        keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in a.shortcuts())
        assert keys in listed, a.text()
    for key in ("G", "F", "1", "I", "R", "W", "F2", "F4", "C", "[", "]", "PgDown", "Ctrl+O", "Ctrl+B", "Ctrl+M"):
        assert any(key in k.split(", ") for k in listed), key
    assert any("Right-drag" in name for name, _ in dlg.rows)
    # the measuring gestures, keyed by the measure tools' real shortcuts
    gestures = [name for name, _ in dlg.rows]
    for mode, what in (("distance", "distance"), ("angle", "angle"), ("cobb", "Cobb")):
        key = window.measure.tools[mode].shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        row = next(r for r in dlg.rows if r[0].startswith(f"{key}, then"))
        assert what in row[1], row
    for gesture in ("handle", "Right-click a measurement", "Delete", "Esc"):
        assert any(gesture in g for g in gestures), gesture
    assert dlg.table.rowCount() == len(dlg.rows)
    assert any(dlg.table.item(r, 0).text().startswith("Drag an end handle") for r in range(dlg.table.rowCount()))
    # no two actions share a key
    seen: dict[str, str] = {}
    for a in shortcut_actions:
        for k in a.shortcuts():
            s = k.toString()
            assert s not in seen or seen[s] == a.text(), f"{s}: {seen.get(s)} and {a.text()}"
            seen[s] = a.text()
    dlg.close()


def test_exception_hook_logs_and_shows_a_dialog(qtbot, monkeypatch) -> None:
    from desktop import app as app_module

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    log_path = app_module.setup_logging()
    from PySide6.QtCore import QStandardPaths

    data_dir = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    assert log_path is not None and str(log_path).startswith(data_dir)  # the user's data folder
    shown: list[tuple[str, str, str]] = []
    reporter = app_module.ErrorReporter(log_path, show=lambda s, t: shown.append((s, t, threading.current_thread().name)))
    reporter.install()
    try:
        raise ZeroDivisionError("boom in a slot")
    except ZeroDivisionError:
        sys.excepthook(*sys.exc_info())
    qtbot.waitUntil(lambda: len(shown) == 1, timeout=5000)

    def crash() -> None:
        raise ValueError("boom in a thread")

    t = threading.Thread(target=crash, name="worker-x")
    t.start()
    t.join()
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=5000)
    assert "ZeroDivisionError: boom in a slot" == shown[0][0]
    assert "ValueError" in shown[1][0] and shown[1][2] == threading.main_thread().name  # dialog on the GUI thread
    for h in logging.getLogger().handlers:
        h.flush()
    text = Path(log_path).read_text(encoding="utf-8")
    assert "boom in a slot" in text and "boom in a thread" in text and "Traceback" in text


def test_default_error_dialog_does_not_block(qtbot) -> None:
    from PySide6.QtWidgets import QApplication, QMessageBox

    from desktop.app import ErrorReporter

    reporter = ErrorReporter(Path("/tmp/x.log"))
    reporter._dialog("KeyError: 'x'", "Traceback ...")  # returns at once (not exec())
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert boxes and "KeyError" in boxes[-1].text() and "/tmp/x.log" in boxes[-1].text()
    for b in boxes:
        b.close()


def test_settings_persist(make_window, settings_path: str, png_path: Path, open_wait, dialogs, qtbot) -> None:
    from desktop.settings import Settings

    win = make_window()
    open_wait(win, png_path)
    win.analysis.cam.opacity.setValue(30)
    win.display.cam_toggle.setChecked(False)
    dialogs.texts.append("Soft tissue")
    win.display.apply_preset("Mediastinum")
    win.display.flush()
    win.commands.save_preset.trigger()
    assert "User: Soft tissue" in win.display.preset_names()
    win.commands.devices["cpu"].trigger()
    qtbot.waitUntil(lambda: win.model_state is ModelState.READY, timeout=20000)
    win.close()
    s = Settings(settings_path)
    assert s.overlay_opacity == pytest.approx(0.3)
    assert s.cam_visible is False
    assert s.device == "cpu"
    assert s.last_folder == str(png_path.parent)
    assert s.recent_files()[0] == str(png_path)
    assert [p.name for p in s.user_presets()] == ["Soft tissue"]
    assert s.geometry() is not None and s.state() is not None
    win2 = make_window()
    assert win2.analysis.cam.opacity.value() == 30
    assert not win2.display.cam_toggle.isChecked()
    win2._fill_recent()
    assert str(png_path) in [a.toolTip() for a in win2.commands.recent_menu.actions()]


def test_command_line_screenshot(tmp_path: Path, tiny_model_path: Path, dicom_dir: Path) -> None:
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "desktop", "--settings", str(tmp_path / "s.ini"), "--model",
                        str(tiny_model_path), "--device", "cpu", "--size", "1200x800", "--screenshot", str(out),
                        str(dicom_dir / "CR-MONO1-10-chest.dcm")], cwd=repo, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "screenshot saved" in r.stdout
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1200, 800)


def test_device_change_does_not_remember_the_model_as_chosen(window, qtbot, settings_path: str) -> None:
    """Switching CPU/CUDA reloads the model in use; it must not become the user's model choice
    (else a newer bundled default would be ignored from then on)."""
    from desktop.settings import Settings

    before = Settings(settings_path).model_path
    window.set_device("cpu")
    qtbot.waitUntil(lambda: window.model_state is ModelState.READY, timeout=20000)
    assert Settings(settings_path).model_path == before
    assert Settings(settings_path).device == "cpu"


@pytest.mark.parametrize("text", ["800", "axb", "10x10", "800x600x2"])
def test_bad_window_size_is_a_usage_error(text: str, capsys) -> None:
    from desktop.app import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--size", text])
    assert e.value.code == 2 and "--size" in capsys.readouterr().err


def test_window_size_parses() -> None:
    from desktop.app import build_parser

    assert build_parser().parse_args(["--size", "1600X1000"]).size == (1600, 1000)


def test_model_card_shows_out_of_source_figures_per_source_first() -> None:
    """The bundled model's card in the app: every out-of-source source with its correct-call rate, before the
    internal test metrics (the PDF footer points readers to this card)."""
    from desktop.analysis.model_card import card_html
    from engine import Classifier, default_model_path

    card = Classifier(default_model_path(), device="cpu", warmup=False).card
    html = card_html(card)
    assert "Out-of-source figures" in html and html.index("Out-of-source figures") < html.index("Test metrics")
    per_source = (card.out_of_source_metrics.get("under_the_decision_rule") or card.out_of_source_metrics)["per_source"]
    assert {"chestxray-com-normal", "hannover-mhh", "cohen-pneumonia", "jsrt-nonodule"} <= set(per_source)
    for src, d in per_source.items():
        assert src in html and f"{d['correct_call_rate']:.3f}" in html
