"""The main window's batch windows (File > Analyse folder): opening one for a folder, opening
one of its rows in the batch's own study, letting a closed one go, asking before quitting
with results not exported, and stopping them all when the window closes."""

from __future__ import annotations

from typing import Any

from .batch_dialog import BatchDialog


class BatchWindows:
    """``win``: the MainWindow (not imported: no cycle). ``open`` returns None without a model
    or a folder; the open windows are in ``windows``."""

    def __init__(self, win: Any) -> None:  # noqa: ANN401 - desktop.main_window.MainWindow
        self.win = win
        self.windows: list[BatchDialog] = []

    def open(self, folder: str | None = None, start: bool = True) -> BatchDialog | None:
        w = self.win
        if w.classifier is None:
            w.dialogs.error("No model", f"Batch analysis needs a model. {w.model_reason}")
            return None
        folder = folder or w.dialogs.open_folder(w.settings.last_folder, "Analyse folder")
        if not folder:
            return None
        dlg = BatchDialog(folder, w.classifier, w.dialogs, w)
        dlg.openRequested.connect(lambda p, d=dlg: self.open_row(d, p))
        dlg.discarded.connect(lambda d=dlg: self._drop(d))
        w.pacs.attach_batch(dlg)  # "Send results to PACS…" once it has finished
        self.windows.append(dlg)
        dlg.show()
        if start:
            dlg.start()
        return dlg

    def open_row(self, dlg: BatchDialog, path: str) -> None:
        """A batch row opens in the batch's own study, never in the study that happens to be open."""
        w = self.win
        w._open_one(w.study.open_batch_row(path, dlg.paths(), dlg.folder))
        w.statusBar().showMessage(w.study.last_message, 10000)

    def _drop(self, dlg: BatchDialog) -> None:
        if dlg in self.windows:
            self.windows.remove(dlg)
            dlg.deleteLater()

    def may_quit(self) -> bool:
        """False when the user keeps the window open for batch results not yet exported."""
        pending = [d for d in self.windows if d.unexported() and not d.close_confirmed]
        if pending and not self.win.dialogs.confirm(
                "Quit RadLens?", f"{sum(d.unexported() for d in pending)} batch result(s) in {len(pending)} "
                "batch window(s) have not been exported to a CSV report. Quit and lose them?", "Quit"):
            return False
        for dlg in pending:
            dlg.close_confirmed = True  # already asked
        return True

    def shutdown(self) -> None:
        for dlg in self.windows:
            dlg.shutdown()
