"""File > Save results as DICOM…: enabled for an analysed DICOM image only; writes the SR and
the heatmap secondary capture (read back here) to the chosen folder off the GUI thread, and
says what it did; a PNG or a failing folder gives a clear message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom

from engine import DISCLAIMER


def test_save_results_as_dicom(window, dialogs, open_wait, qtbot, dicom_dir: Path, tmp_path: Path) -> None:
    act = window.save_dicom.action
    file_menu = window.commands.file_menu
    assert act in file_menu.actions() and act.text().replace("&", "") == "Save results as DICOM…"
    assert not act.isEnabled()  # nothing open yet
    src = dicom_dir / "nccid_nih_dx.dcm"
    open_wait(window, src)
    assert window.prediction is not None and act.isEnabled()

    out = tmp_path / "results"
    dialogs.folders.append(str(out))
    with qtbot.waitSignal(window.save_dicom.saved, timeout=20000) as blocker:
        act.trigger()
    outcome = blocker.args[0]
    assert outcome.ok, outcome.error
    files = sorted(out.glob("*.dcm"))
    assert sorted(Path(p) for p in outcome.paths) == files and len(files) == 2
    source = pydicom.dcmread(src, stop_before_pixels=True)
    kinds = {}
    for f in files:
        ds = pydicom.dcmread(f)
        kinds[ds.Modality] = ds
        assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.PatientID == source.PatientID
        assert ds.SOPInstanceUID != source.SOPInstanceUID and f.name == f"{ds.SOPInstanceUID}.dcm"
    assert set(kinds) == {"SR", "OT"}
    assert kinds["SR"].VerificationFlag == "UNVERIFIED"
    assert kinds["OT"].SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert kinds["OT"].BurnedInAnnotation == "YES"
    (title, text) = dialogs.infos[-1]
    assert title == "Results saved as DICOM" and "nccid_nih_dx.dcm" in text and DISCLAIMER in text
    assert all(Path(p).name in text for p in outcome.paths)
    assert act.isEnabled()  # ready for the next save


def test_save_results_refused_for_png_and_bad_folder(window, dialogs, open_wait, qtbot, png_path: Path,
                                                     dicom_dir: Path, tmp_path: Path) -> None:
    act = window.save_dicom.action
    open_wait(window, png_path)
    assert window.prediction is not None and not act.isEnabled()
    window.save_dicom.save_current()  # e.g. from a stale menu: a message, no dialog, no file
    title, text = dialogs.errors[-1]
    assert title == "Cannot save results as DICOM" and "chest.png is not a DICOM image" in text

    src = tmp_path / "image.dcm"
    shutil.copyfile(dicom_dir / "CR-MONO1-10-chest.dcm", src)
    open_wait(window, src)
    blocker_file = tmp_path / "a-file"
    blocker_file.write_text("x")
    dialogs.folders.append(str(blocker_file))
    with qtbot.waitSignal(window.save_dicom.saved, timeout=20000) as blocker:
        act.trigger()
    assert not blocker.args[0].ok
    title, text = dialogs.errors[-1]
    assert title == "Results not saved as DICOM" and "Choose a writable folder" in text

    dialogs.folders.append("")  # cancelled folder dialog: nothing happens
    n = len(dialogs.errors) + len(dialogs.infos)
    act.trigger()
    qtbot.wait(50)
    assert len(dialogs.errors) + len(dialogs.infos) == n
