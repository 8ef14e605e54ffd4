"""Grad-CAM controls: show/hide (G), opacity, which class, the colour legend and what its
scale means (fixed for the model, or relative to the image), and "no evidence" for a class
whose map is negligible."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from engine.ai.cam import CamScale

from ..core.windowing import legend_rgb
from ..viewer.convert import rgb_qimage


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
        legend.setMinimumWidth(60)  # narrow windows: the analysis dock fits without scrolling
        legend.setFixedHeight(12)
        legend.setToolTip("Turbo colours over the film: low evidence is transparent (grey here); blue to red = "
                          "stronger evidence for the class. Every class is drawn on the same scale.")
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
        self.scale_note = QLabel()
        self.scale_note.setObjectName("camScaleNote")
        self.scale_note.setWordWrap(True)
        self.scale_note.setVisible(False)
        lay.addWidget(self.scale_note)
        self.evidence_note = QLabel()
        self.evidence_note.setObjectName("camEvidenceNote")
        self.evidence_note.setWordWrap(True)
        self.evidence_note.setStyleSheet("QLabel#camEvidenceNote { font-weight: bold; }")
        self.evidence_note.setVisible(False)
        lay.addWidget(self.evidence_note)
        note = QLabel("Grad-CAM shows where the model looked, not where disease is.")
        note.setWordWrap(True)
        note.setStyleSheet("color: palette(mid);")
        lay.addWidget(note)
        self.set_labels(())

    def set_labels(self, labels: Sequence[str], top: int = 0, mark: str = "call") -> None:
        """The model's classes; selects the top class, named with ``mark`` ("call", or e.g.
        "top, not valid" for an out-of-scope image shown anyway)."""
        self.classes.blockSignals(True)
        self.classes.clear()
        for i, lab in enumerate(labels):
            self.classes.addItem(lab, i)
        self._top = top
        if labels:
            self.classes.setCurrentIndex(top)
            if mark:
                self.classes.setItemText(top, f"{labels[top]} ({mark})")
        self.classes.blockSignals(False)
        self.classes.setEnabled(bool(labels))
        if not labels:
            self.set_scale(None)
            self.set_evidence_note("")

    def set_scale(self, scale: CamScale | None) -> None:
        """Say what the colours' scale is (None: no heatmap, nothing to say)."""
        self.scale_note.setText(f"Scale: {scale.describe()}" if scale is not None else "")
        self.scale_note.setToolTip(
            "" if scale is None else
            "Every class is drawn on this one scale, so the same colour means the same strength of evidence. "
            + ("The model card gives the scale: the 99th percentile of the top class's peak on validation images."
               if scale.fixed else "The model card gives no fixed scale, so colours compare classes within this "
               "image only, not across images."))
        self.scale_note.setVisible(scale is not None)

    def set_evidence_note(self, text: str) -> None:
        """E.g. "no evidence for this class" when the selected class's map is negligible."""
        self.evidence_note.setText(text)
        self.evidence_note.setVisible(bool(text))

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
