"""File dialogs and message boxes behind one object, so tests can replace them."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QInputDialog, QLineEdit, QMessageBox, QWidget

IMAGES_FILTER = "Images (*.png *.jpg *.jpeg *.dcm *.dicom *.DCM)"
ALL_FILES_FILTER = "All files (*)"
# File > Open shows all files by default: DICOM files often have no extension (WG04-style
# samples, PACS exports, DICOMDIR media), and the engine decides what a file is from its content.
# The images filter stays one click away.
IMAGE_FILTER = f"{ALL_FILES_FILTER};;{IMAGES_FILTER}"
OPEN_DEFAULT_FILTER = ALL_FILES_FILTER
MODEL_FILTER = "ONNX models (*.onnx);;All files (*)"
CSV_FILTER = "CSV files (*.csv)"


class Dialogs:
    """Modal questions the window asks the user. Each returns the answer or "" / []."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.parent = parent

    def open_files(self, folder: str) -> list[str]:
        files, _ = QFileDialog.getOpenFileNames(self.parent, "Open images", folder, IMAGE_FILTER, OPEN_DEFAULT_FILTER)
        return files

    def open_folder(self, folder: str, title: str = "Open folder") -> str:
        return QFileDialog.getExistingDirectory(self.parent, title, folder)

    def open_model(self, folder: str) -> str:
        path, _ = QFileDialog.getOpenFileName(self.parent, "Load model", folder, MODEL_FILTER)
        return path

    def save_csv(self, suggested: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self.parent, "Export CSV report", suggested, CSV_FILTER)
        if path and not path.lower().endswith(".csv"):
            path += ".csv"
        return path

    def text(self, title: str, label: str, default: str = "") -> str:
        """A line of text; the dialog is sized so its title and label are never cut off."""
        dlg = QInputDialog(self.parent)
        dlg.setWindowTitle(title)
        dlg.setLabelText(label)
        dlg.setTextValue(default)
        fm = dlg.fontMetrics()
        width = max(320, fm.horizontalAdvance(title) + 160, fm.horizontalAdvance(label) + 60)
        for edit in dlg.findChildren(QLineEdit):  # the dialog's layout sizes it from its contents
            edit.setMinimumWidth(width - 40)
        ok = dlg.exec() == QInputDialog.DialogCode.Accepted
        return dlg.textValue().strip() if ok else ""

    def save_file(self, title: str, suggested: str, name_filter: str, suffix: str) -> str:
        """A path to write (``suffix``, e.g. ".png", added when missing); "" when cancelled."""
        path, _ = QFileDialog.getSaveFileName(self.parent, title, suggested, name_filter)
        if path and not path.lower().endswith(suffix):
            path += suffix
        return path

    def choose(self, title: str, label: str, items: list[str]) -> str:
        """One of ``items``; "" when cancelled."""
        item, ok = QInputDialog.getItem(self.parent, title, label, items, 0, False)
        return item if ok else ""

    def password(self, title: str, label: str) -> str:
        """A password or token, typed hidden; "" when cancelled."""
        text, ok = QInputDialog.getText(self.parent, title, label, QLineEdit.EchoMode.Password)
        return text if ok else ""

    def error(self, title: str, text: str) -> None:
        QMessageBox.warning(self.parent, title, text)

    def info(self, title: str, text: str) -> None:
        QMessageBox.information(self.parent, title, text)

    def confirm(self, title: str, text: str, action: str) -> bool:
        """Ask before something that loses work; ``action`` names the button that goes ahead."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.NoButton, self.parent)
        go = box.addButton(action, QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is go

