"""One per-image path: the GUI worker, the CLI and ``analyze()`` give bit-identical
probabilities for the same file (the engine's ``classify`` is the only per-image job)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from engine import Classifier, analyze
from engine.batch.cli import main as cli_main


@pytest.mark.parametrize("source", ["jpeg", "dicom"])
def test_gui_cli_and_analyze_agree_bit_for_bit(window, open_wait, tmp_path: Path, tiny_model_path: Path,
                                               cxr_samples: dict[str, list[Path]], dicom_dir: Path,
                                               source: str) -> None:
    src = cxr_samples["covid"][0] if source == "jpeg" else dicom_dir / "CR-MONO1-10-chest.dcm"
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / src.name
    path.write_bytes(src.read_bytes())

    ref = analyze(path, Classifier(tiny_model_path, device="cpu"))

    out = tmp_path / "r.csv"
    assert cli_main([str(folder), "-o", str(out), "--model", str(tiny_model_path), "--device", "cpu",
                     "--batch-size", "1", "--no-progress"]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    cli_probs = np.array([np.float32(row[f"prob_{lab}"]) for lab in ref.labels], np.float32)

    open_wait(window, path)
    gui = window.prediction
    assert gui is not None and os.path.abspath(gui.path) == os.path.abspath(str(path))

    assert ref.probs.dtype == gui.probs.dtype == np.float32
    assert gui.probs.tobytes() == ref.probs.tobytes()  # the GUI worker: bit for bit
    assert cli_probs.tobytes() == ref.probs.tobytes()  # the CLI, through the CSV: bit for bit
    assert row["call"] == gui.call == ref.call
    assert row["flags"] == ";".join(gui.flags) == ";".join(ref.flags)
    np.testing.assert_array_equal(gui.cam, ref.cam)
