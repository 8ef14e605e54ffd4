"""What the image view shows: window/level (presets, numeric entry, right-drag, invert,
reset), zoom actions, the Grad-CAM overlay (toggle, class, opacity; "no evidence" instead of
a map for a class whose evidence is negligible) and the lung outline (toggle).

Pixels come prepared from a worker (``DisplaySource``); here they only pass through a
lookup table and become a QImage, on the GUI thread, coalesced to one render per
event-loop turn so a fast right-drag never queues renders.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QWidget

from engine import Window
from engine.ai.cam import NEGLIGIBLE_EVIDENCE

from ..core.windowing import (
    BUILTIN_PRESETS,
    DEFAULT_PRESET,
    PRESET_HELP,
    DisplaySource,
    drag_window,
    lung_contours,
    render,
)
from ..core.wl_text import window_text, wl_decimals
from .convert import gray_qimage, rgba_qimage
from .image_view import ImageView
from .wl_bar import WindowLevelBar

PRESET_KEYS = ("F2", "F3", "F4", "F5", "F6")
ORIGINAL = "Original image"  # the file's own display of a PNG/JPEG ("DICOM default" only for DICOM)


def action(parent: QObject, text: str, shortcut: str | QKeySequence | list | None = None, tip: str = "",
            checkable: bool = False, short: str = "") -> QAction:
    """``short``: the label on a toolbar button (its ``iconText``; menus show ``text``, and the
    button's tooltip the full name and key), so the toolbar fits one row at 1024 px."""
    a = QAction(text, parent)
    if short:
        a.setIconText(short)
    if isinstance(shortcut, list):
        a.setShortcuts([QKeySequence(s) for s in shortcut])
    elif shortcut:
        a.setShortcut(QKeySequence(shortcut))
    if tip:
        a.setStatusTip(tip)
        a.setToolTip(f"{text} ({a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})" if shortcut else text)
    a.setCheckable(checkable)
    return a


class DisplayController(QObject):
    windowChanged = Signal(str)  # a short description for the status bar
    imageShown = Signal(bool)  # an image is on screen (True) or none (False): image controls follow it

    def __init__(self, view: ImageView, user_presets: list[Window], cam_visible: bool, opacity: float,
                 parent: QObject | None = None, lungs_visible: bool = False) -> None:
        super().__init__(parent)
        self.view = view
        self.src: DisplaySource | None = None
        self.window: Window | None = None  # None: the file's default display
        self.invert = False
        self.user_presets = list(user_presets)
        self._drag_start: Window | None = None
        self._heat: tuple[np.ndarray, ...] = ()
        self._evidence: tuple[float, ...] = ()
        self._cam_labels: tuple[str, ...] = ()
        self._cam_class = 0
        self._is_dicom = True
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(0)
        self._render_timer.timeout.connect(self._render_now)
        self.renders = 0
        self.bar = WindowLevelBar()
        self.bar.preset.activated.connect(self._on_preset_combo)
        self.bar.center.valueChanged.connect(self._on_numeric)
        self.bar.width.valueChanged.connect(self._on_numeric)
        self._make_actions(cam_visible, lungs_visible)
        view.windowDragStarted.connect(self._drag_started)
        view.windowDragged.connect(self._dragged)
        view.set_overlay_opacity(opacity)
        view.set_overlay_visible(cam_visible)
        view.set_lung_outline_visible(lungs_visible)
        self._set_enabled(False)

    def _make_actions(self, cam_visible: bool, lungs_visible: bool = False) -> None:
        v = self.view
        self.fit = action(self, "&Fit to window", "F", "Fit the whole image in the view", short="Fit")
        self.fit.triggered.connect(v.fit_to_window)
        self.actual = action(self, "&Actual size (1:1)", "1", "One image pixel per screen pixel", short="1:1")
        self.actual.triggered.connect(v.actual_size)
        self.zoom_in = action(self, "Zoom &in", ["+", "=", QKeySequence.StandardKey.ZoomIn], "Zoom in around the centre")
        self.zoom_in.triggered.connect(lambda: v.zoom_by(1.25))
        self.zoom_out = action(self, "Zoom &out", ["-", QKeySequence.StandardKey.ZoomOut], "Zoom out")
        self.zoom_out.triggered.connect(lambda: v.zoom_by(0.8))
        self.invert_action = action(self, "&Invert grayscale", "I", "Swap black and white", checkable=True, short="Invert")
        self.invert_action.toggled.connect(self.set_invert)
        self.reset = action(self, "&Reset view and window", "R", "Fit, DICOM default window, no inversion",
                            short="Reset")
        self.reset.triggered.connect(self.reset_all)
        self.numeric = action(self, "Set window/level &numerically", "W", "Type the window centre and width")
        self.numeric.triggered.connect(self._focus_numeric)
        self.preset_actions: list[QAction] = []
        group = QActionGroup(self)
        for name, key in zip(BUILTIN_PRESETS, PRESET_KEYS, strict=True):
            a = action(self, f"Preset: {name}", key, PRESET_HELP[name], checkable=True)
            a.setData(name)
            a.triggered.connect(lambda _=False, n=name: self.apply_preset(n))
            group.addAction(a)
            self.preset_actions.append(a)
        self.cam_toggle = action(self, "Show &Grad-CAM heatmap", "G", "Show where the model looked", checkable=True,
                                 short="Heatmap")
        self.cam_toggle.setChecked(cam_visible)
        self.cam_toggle.toggled.connect(self.view.set_overlay_visible)
        self.cam_toggle.toggled.connect(lambda _on: self._show_cam_note())
        self.lung_toggle = action(self, "Outline &lungs", "L", "Draw the outline of the lung fields the "
                                  "segmentation model found", checkable=True)
        self.lung_toggle.setChecked(lungs_visible)
        self.lung_toggle.toggled.connect(self.view.set_lung_outline_visible)
        self.lung_toggle.setEnabled(False)  # until an image with a lung field is shown
        self.cam_next = action(self, "Next heatmap &class", "C", "Show the Grad-CAM of the next class")
        self.cam_less = action(self, "Heatmap opacity down", "[", "Make the heatmap more transparent")
        self.cam_more = action(self, "Heatmap opacity up", "]", "Make the heatmap more opaque")
        self.view_actions = [self.fit, self.actual, self.zoom_in, self.zoom_out, self.invert_action, self.reset,
                             self.numeric, *self.preset_actions]

    def _set_enabled(self, on: bool) -> None:
        for a in (*self.view_actions, self.cam_toggle, self.cam_next, self.cam_less, self.cam_more):
            a.setEnabled(on)
        self.bar.setEnabled(on)
        self.imageShown.emit(on)

    def bind_image_controls(self, widget: QWidget) -> None:
        """``widget`` (e.g. the Grad-CAM controls) is enabled only while an image is shown."""
        widget.setEnabled(self.src is not None)
        self.imageShown.connect(widget.setEnabled)

    # -- image ---------------------------------------------------------------------------
    def set_source(self, src: DisplaySource, is_dicom: bool = True, keep_view: bool = False) -> None:
        """A new image: default window, no inversion, fitted, no overlay yet. ``is_dicom``:
        its own display is called "DICOM default", else "Original image". ``keep_view``: the
        same image again (e.g. analysed by another model or on another device): window,
        inversion, zoom and pan stay as the user left them."""
        self._is_dicom = is_dicom
        for a in self.preset_actions:
            if a.data() == DEFAULT_PRESET:
                a.setText(f"Preset: {self.preset_label(DEFAULT_PRESET)}")
        keep = keep_view and self.src is not None and self.src.shape == src.shape
        self.src = src
        self._heat = ()
        if not keep:
            self.window = None
            self.invert_action.blockSignals(True)
            self.invert_action.setChecked(False)
            self.invert_action.blockSignals(False)
            self.invert = False
            self._fill_presets()
        self.view.set_image(gray_qimage(render(src, self.window, self.invert)), reset_view=not keep)
        self.view.set_overlay(None)
        self.set_lungs(None)
        if not keep:
            self.view.set_note("")
        self._set_enabled(True)
        self._sync_widgets()

    def clear(self, message: str) -> None:
        self.src = None
        self._heat = ()
        self._evidence = ()
        self.lung_toggle.setEnabled(False)
        self.view.clear(message)
        self._set_enabled(False)
        self._syncing = True
        self._fill_presets()  # no image: no presets, no centre or width
        self.bar.center.clear_value()
        self.bar.width.clear_value()
        self._syncing = False
        self.windowChanged.emit("")

    def effective_window(self) -> Window | None:
        if self.src is None:
            return None
        return self.window or self.src.default_window

    def displayed(self) -> np.ndarray | None:
        """The uint8 image currently drawn (for tests)."""
        return None if self.src is None else render(self.src, self.window, self.invert)

    def set_window(self, window: Window | None) -> None:
        self.window = window
        self._schedule()

    def set_invert(self, on: bool) -> None:
        self.invert = bool(on)
        if self.invert_action.isChecked() != self.invert:
            self.invert_action.setChecked(self.invert)
        self._schedule()

    def preset_label(self, name: str) -> str:
        """What a preset is called for this image (the file's own display of a PNG/JPEG is
        not a "DICOM default")."""
        return ORIGINAL if name == DEFAULT_PRESET and not self._is_dicom else name

    def apply_preset(self, name: str) -> None:
        if self.src is None:
            return
        name = DEFAULT_PRESET if name == ORIGINAL else name
        for p in self.user_presets:
            if f"User: {p.name}" == name:
                self.set_window(p)
                return
        self.set_window(self.src.preset(name))

    def preset_names(self) -> list[str]:
        return [self.bar.preset.itemText(i) for i in range(self.bar.preset.count())]

    def add_user_preset(self, w: Window) -> None:
        self.user_presets = [p for p in self.user_presets if p.name != w.name] + [w]
        self._fill_presets()
        self._sync_widgets()

    def reset_all(self) -> None:
        if self.src is None:
            return
        self.set_invert(False)
        self.set_window(None)
        self.view.fit_to_window()

    def _fill_presets(self) -> None:
        self.bar.preset.blockSignals(True)
        self.bar.preset.clear()
        if self.src is not None:
            for name, _ in self.src.presets:
                self.bar.preset.addItem(self.preset_label(name))
                tip = "The image as stored in the file" if self.preset_label(name) == ORIGINAL else \
                    PRESET_HELP.get(name, "Stored in the file")
                self.bar.preset.setItemData(self.bar.preset.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
            for p in self.user_presets:
                self.bar.preset.addItem(f"User: {p.name}")
            self.bar.preset.addItem("Custom")
        self.bar.preset.blockSignals(False)

    def _on_preset_combo(self, i: int) -> None:
        name = self.bar.preset.itemText(i)
        if name != "Custom":
            self.apply_preset(name)

    def _on_numeric(self, _v: float) -> None:
        if self.src is None or self._syncing:
            return
        self.set_window(Window(self.bar.center.value(), max(self.bar.width.value(), 1e-6), "LINEAR_EXACT", "Custom"))

    def _focus_numeric(self) -> None:
        self.bar.center.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.bar.center.selectAll()

    _syncing = False

    def _current_preset_name(self) -> str:
        if self.src is None:
            return ""
        if self.window is None:
            return DEFAULT_PRESET
        for name, w in self.src.presets:
            if w == self.window:
                return name
        for p in self.user_presets:
            if p == self.window:
                return f"User: {p.name}"
        return "Custom"

    def _sync_widgets(self) -> None:
        w = self.effective_window()
        if w is None or self.src is None:
            return
        self._syncing = True
        span = self.src.hi - self.src.lo
        decimals = wl_decimals(span)
        for box, val in ((self.bar.center, w.center), (self.bar.width, w.width)):
            box.setDecimals(decimals)
            box.setSingleStep(max(span / 100.0, 10 ** -decimals))
            box.show_value(val)
        name = self._current_preset_name()
        self.bar.preset.setCurrentText(self.preset_label(name))
        for a in self.preset_actions:
            a.setChecked(a.data() == name)
        self._syncing = False
        self.windowChanged.emit(window_text(self.preset_label(name), w.center, w.width, span, self.invert))

    # -- rendering -----------------------------------------------------------------------
    def _schedule(self) -> None:
        if self.src is not None and not self._render_timer.isActive():
            self._render_timer.start()

    def _render_now(self) -> None:
        if self.src is None:
            return
        self.view.update_image(gray_qimage(render(self.src, self.window, self.invert)))
        self.renders += 1
        self._sync_widgets()

    def flush(self) -> None:
        """Render a pending change now (tests, screenshots)."""
        if self._render_timer.isActive():
            self._render_timer.stop()
            self._render_now()

    # -- right-drag ----------------------------------------------------------------------
    def _drag_started(self) -> None:
        self._drag_start = self.effective_window()

    def _dragged(self, dx: float, dy: float) -> None:
        if self.src is None or self._drag_start is None:
            return
        vp = self.view.viewport()
        self.window = drag_window(self._drag_start, dx, dy, self.src, (vp.width(), vp.height()))
        self._schedule()

    # -- Grad-CAM ------------------------------------------------------------------------
    def set_heatmaps(self, heat: tuple[np.ndarray, ...], class_index: int, evidence: tuple[float, ...] = (),
                     labels: tuple[str, ...] = ()) -> None:
        """Every class's overlay (RGBA) and, when known, each class's evidence (its map's
        peak as a fraction of the shared scale): a class under ``NEGLIGIBLE_EVIDENCE`` is
        shown as "no evidence", not as a map."""
        self._heat = heat
        self._evidence = tuple(evidence)
        self._cam_labels = tuple(labels)
        self.set_cam_class(class_index)

    def clear_heatmaps(self) -> None:
        self._heat = ()
        self._evidence = ()
        self.view.set_overlay(None)
        self.view.set_note("")

    def set_cam_class(self, i: int) -> None:
        self._cam_class = i
        if 0 <= i < len(self._heat) and not self.no_evidence(i):
            self.view.set_overlay(rgba_qimage(self._heat[i]))
        else:
            self.view.set_overlay(None)
        self._show_cam_note()

    def no_evidence(self, i: int | None = None) -> bool:
        """Whether the class (the current one by default) has negligible evidence."""
        i = self._cam_class if i is None else i
        return bool(self._heat) and 0 <= i < len(self._evidence) and self._evidence[i] < NEGLIGIBLE_EVIDENCE

    def cam_note(self) -> str:
        """What the view says about the heatmap of the current class ("" when it shows a map)."""
        if not self._heat or not self.no_evidence():
            return ""
        i = self._cam_class
        name = self._cam_labels[i] if 0 <= i < len(self._cam_labels) else "this class"
        return f"Grad-CAM {name}: no evidence for this class (peak under {NEGLIGIBLE_EVIDENCE:.0%} of the scale)."

    def _show_cam_note(self) -> None:
        self.view.set_note(self.cam_note() if self.cam_toggle.isChecked() else "")

    def cam_class(self) -> int:
        return self._cam_class

    def has_heatmaps(self) -> bool:
        return bool(self._heat)

    # -- lung outline --------------------------------------------------------------------
    def set_lungs(self, lungs: object | None) -> None:
        """The lung field of the current image (``engine.ai.lungs.LungField`` or anything with a
        bool HxW ``mask`` at image size), or None: no outline, and the toggle is disabled."""
        mask = getattr(lungs, "mask", None)
        contours = lung_contours(mask) if isinstance(mask, np.ndarray) and mask.ndim == 2 else []
        self.view.set_lung_outline(contours, mask.shape if contours else None)
        has = self.view.has_lung_outline()
        self.lung_toggle.setEnabled(has)
        self.lung_toggle.setStatusTip("Draw the outline of the lung fields the segmentation model found" if has else
                                      "No lung field for this image (the model has no lung segmentation, or it "
                                      "found none)")
