"""Grad-CAM controls: show/hide (G), opacity, which class, and the colour legend."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from .convert import rgb_qimage
from .core.windowing import legend_rgb


class CamControls(QWidget):
    classChanged = Signal(int)  # class index into the model's labels
    opacityChanged = Signal(float)

    def __init__(self, toggle: QAction, opacity: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._toggle = toggle
        self._top = 0
        self.check = QCheckBox("Show Grad-CAM heatmap (G)")
        self.check.setChecked(toggle.isChecked())
        self.check.toggled.connect(toggle.setChecked)
        toggle.toggled.connect(self.check.setChecked)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(opacity * 100))
        self.opacity.setToolTip("Overlay opacity ([ and ] change it)")
        self.opacity_label = QLabel(f"{round(opacity * 100)}%")
        self.opacity_label.setMinimumWidth(36)
        self.opacity.valueChanged.connect(self._on_opacity)
        self.classes = QComboBox()
        self.classes.setToolTip("Which class's evidence the heatmap shows (the top class by default)")
        self.classes.currentIndexChanged.connect(self._on_class)
        legend = QLabel()
        legend.setPixmap(QPixmap.fromImage(rgb_qimage(legend_rgb(200, 12))))
        legend.setScaledContents(True)
        legend.setMinimumWidth(120)
        legend.setFixedHeight(12)
        legend.setToolTip("Turbo colour map: blue = little evidence, red = strong evidence for the class")
        grid = QGridLayout()
        grid.addWidget(QLabel("Opacity"), 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.opacity, 1)
        row.addWidget(self.opacity_label)
        grid.addLayout(row, 0, 1)
        grid.addWidget(QLabel("Class"), 1, 0)
        grid.addWidget(self.classes, 1, 1)
        leg = QHBoxLayout()
        leg.addWidget(QLabel("low"))
        leg.addWidget(legend, 1)
        leg.addWidget(QLabel("high"))
        grid.addWidget(QLabel("Evidence"), 2, 0)
        grid.addLayout(leg, 2, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.check)
        lay.addLayout(grid)
        note = QLabel("Grad-CAM shows where the model looked, not where disease is.")
        note.setWordWrap(True)
        note.setStyleSheet("color: palette(mid);")
        lay.addWidget(note)
        self.set_labels(())

    def set_labels(self, labels: Sequence[str], top: int = 0) -> None:
        """The model's classes; selects the top class."""
        self.classes.blockSignals(True)
        self.classes.clear()
        for i, lab in enumerate(labels):
            self.classes.addItem(lab, i)
        self._top = top
        if labels:
            self.classes.setCurrentIndex(top)
            self.classes.setItemText(top, f"{labels[top]} (top class)")
        self.classes.blockSignals(False)
        self.classes.setEnabled(bool(labels))

    def class_index(self) -> int:
        return max(0, self.classes.currentIndex())

    def set_class_index(self, i: int) -> None:
        self.classes.setCurrentIndex(i)

    def opacity_value(self) -> float:
        return self.opacity.value() / 100.0

    def step_opacity(self, delta: int) -> None:
        self.opacity.setValue(self.opacity.value() + delta)

    def _on_opacity(self, v: int) -> None:
        self.opacity_label.setText(f"{v}%")
        self.opacityChanged.emit(v / 100.0)

    def _on_class(self, i: int) -> None:
        if i >= 0:
            self.classChanged.emit(i)
