"""The toolbar's window/level bar: preset selector and numeric centre/width entry, the
numbers written as ``core.wl_text.format_wl`` writes them everywhere."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

from ..core.wl_text import format_wl


class WLSpinBox(QDoubleSpinBox):
    """Writes its value as ``core.wl_text.format_wl`` does (no trailing zeros); blank when
    there is no image (``clear_value``)."""

    def textFromValue(self, value: float) -> str:  # noqa: N802
        return format_wl(value, self.decimals())

    def clear_value(self) -> None:
        self.setSpecialValueText(" ")
        self.setValue(self.minimum())

    def show_value(self, value: float) -> None:
        self.setSpecialValueText("")
        self.setValue(value)


class WindowLevelBar(QWidget):
    """Preset selector and numeric centre/width entry."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preset = QComboBox()
        self.preset.setToolTip("Window/level preset (F2-F6)")
        self.preset.setMinimumContentsLength(14)
        self.center = WLSpinBox()
        self.width = WLSpinBox()
        for box, name in ((self.center, "Level (window centre)"), (self.width, "Window width")):
            box.setRange(-1e7, 1e7)
            box.setKeyboardTracking(False)
            box.setToolTip(f"{name}; type a value and press Enter. Right-drag on the image also changes it.")
            box.setMinimumWidth(90)
        self.width.setMinimum(1e-6)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(QLabel("W/L"))
        lay.addWidget(self.preset)
        lay.addWidget(QLabel("C"))
        lay.addWidget(self.center)
        lay.addWidget(QLabel("W"))
        lay.addWidget(self.width)
