"""Analysis > Adapt to this site…: the dialog runs engine.adapt in a thread (progress, cancel), shows the
before/after table, and switches the window to the adapted model; Use the bundled model switches back."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from engine import default_model_path
from engine.ai.model import sha256_file

EXTDEV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cxr-extdev"


def _site(tmp_path: Path, n: int = 24) -> Path:
    if not (EXTDEV / "manifest.csv").is_file():
        pytest.skip(f"cxr-extdev not found at {EXTDEV}")
    rows = [r for r in csv.DictReader(open(EXTDEV / "manifest.csv", encoding="utf-8"))
            if r["source"] == "chestxray-com-normal"][:n]
    site = tmp_path / "Site B"
    (site / "normal").mkdir(parents=True)
    for r in rows:
        os.symlink(EXTDEV / r["file"], site / "normal" / Path(r["file"]).name)
    return site


def _menu_texts(win) -> list[str]:
    an = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Analysis")
    return [a.text() for a in an.actions()]


def test_adapt_dialog_adapts_switches_and_goes_back(qtbot, make_window, tmp_path: Path) -> None:
    bundled = default_model_path()
    sha_before = sha256_file(bundled)
    win = make_window(model=bundled)
    assert "&Adapt to this site…" in _menu_texts(win) and "Use the &bundled model" in _menu_texts(win)
    assert win.commands.adapt.isEnabled()
    dlg = win.adapt_dialog()
    assert "Research use only" in dlg.findChildren(type(dlg.state))[0].text()
    site = _site(tmp_path)
    dlg.folder.setText(str(site))
    assert dlg.output.text().endswith("radlens-cxr4-Site-B.onnx")  # suggested from the site's name
    out = tmp_path / "adapted.onnx"
    dlg.output.setText(str(out))
    dlg.start()
    assert not dlg.start_button.isEnabled() and dlg.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: dlg.result is not None or dlg.start_button.isEnabled(), timeout=120000)
    assert dlg.result is not None, dlg.state.text()
    assert out.is_file() and sha256_file(bundled) == sha_before  # a new file; the bundled model untouched
    cells = [[dlg.table.item(i, j).text() for j in range(3)] for i in range(dlg.table.rowCount())]
    assert cells[0][0] == "site normal films called normal" and "/24)" in cells[0][1] and "/24)" in cells[0][2]
    assert any(c[0] == "reference hold-out accuracy" for c in cells)
    assert "sensitivity for tuberculosis at this site is not measured" in dlg.warnings.text()
    assert dlg.use_button.isEnabled()
    with qtbot.waitSignal(win.models.loaded, timeout=30000):
        dlg.use_button.click()
    assert win.classifier.card.parent["sha256"] == sha_before
    assert win.classifier.card.name == "radlens-cxr4-Site-B"
    panel = win.analysis.model.text()
    assert "Adapted to site 'Site B' from radlens-cxr4" in panel
    card = win.show_model_card()
    assert "Site adaptation" in card.text() and "Parent model: radlens-cxr4" in card.text()
    card.close()
    with qtbot.waitSignal(win.models.loaded, timeout=30000):
        win.commands.bundled.trigger()
    assert win.classifier.sha256 == sha_before and win.classifier.card.parent is None
    assert win.settings.model_path == ""


def test_adapt_dialog_refusal_and_cancel(qtbot, make_window, tmp_path: Path) -> None:
    win = make_window(model=default_model_path())
    dlg = win.adapt_dialog()
    small = _site(tmp_path, n=5)
    dlg.folder.setText(str(small))
    dlg.output.setText(str(tmp_path / "small.onnx"))
    dlg.start()
    qtbot.waitUntil(lambda: dlg.start_button.isEnabled(), timeout=60000)
    assert dlg.result is None and "too few films" in dlg.state.text()
    assert not (tmp_path / "small.onnx").exists() and not dlg.use_button.isEnabled()
    big = _site(tmp_path / "big", n=60)
    dlg.folder.setText(str(big))
    dlg.output.setText(str(tmp_path / "cancelled.onnx"))
    dlg.start()
    dlg.cancel()
    qtbot.waitUntil(lambda: dlg.start_button.isEnabled(), timeout=60000)
    assert dlg.state.text().startswith("Cancelled") and not (tmp_path / "cancelled.onnx").exists()
