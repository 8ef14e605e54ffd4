"""Distance, angle and Cobb-angle tools on the image view.

A measurement is a ``MeasurementItem``, a child of the view's image item (image
coordinates: it stays on the anatomy at every zoom and pan, and rendering the scene draws
it). It is selectable and movable; its points are handles (shown when it is selected)
that can be dragged; Delete, its context menu (right-click on it) and "Delete all
measurements on this image" remove it. The numbers and calibration are
``desktop.core.measurements``'; the models live in ``MeasureController.store`` (per image
path, for the app's lifetime), so an image's measurements come back with it.

Tool modes: Esc pan/select (the default: left-drag pans, right-drag is window/level as
before), M distance, A angle, Shift+A Cobb angle. In a tool mode a left press-drag-release
(or click, click) draws; right-drag still changes window/level and the wheel still zooms.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QGraphicsItem, QGraphicsView, QMenu, QWidget
from shiboken6 import isValid

from engine import ImageMeta

from ..core.measurements import Calibration, Measurement, MeasurementStore, Point, calibration_for
from .display_control import action
from .image_view import ImageView
from .measure_items import Handle, MeasurementItem

__all__ = ["Handle", "MeasureController", "MeasurementItem", "attach"]
DRAG_PX = 4  # a press-release further apart than this is a drag


class MeasureController(QObject):
    """The measuring tools of one ``ImageView``: tool mode, drawing, the per-image store."""

    changed = Signal(str)  # path whose measurements changed

    def __init__(self, view: ImageView, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.store = MeasurementStore()
        self.path = ""
        self.cal = Calibration()
        self.scale = (1.0, 1.0)
        self.mode = "pan"
        self.items: list[MeasurementItem] = []
        self.draft: MeasurementItem | None = None
        self._press: QPointF | None = None
        self.menu: QMenu | None = None
        self._make_actions()
        view.viewport().installEventFilter(self)
        view.zoomChanged.connect(lambda _s: [i.zoom_changed() for i in self.items if isValid(i)])
        view.scene().selectionChanged.connect(self._update_enabled)
        self._update_enabled()

    def _make_actions(self) -> None:
        self.group = QActionGroup(self)
        self.tools: dict[str, QAction] = {}
        for mode, text, key, tip, short in (
                ("pan", "&Pan / select", "Esc", "Left-drag pans; click a measurement to select, move or edit it", ""),
                ("distance", "Measure &distance", "M", "Drag (or click twice) to measure a length", "Distance"),
                ("angle", "Measure &angle", "A", "Drag one arm to the vertex, then click the end of the other arm",
                 "Angle"),
                ("cobb", "&Cobb angle", "Shift+A", "Draw two lines (e.g. along two end plates): the angle between them",
                 "Cobb")):
            a = action(self, text, key, tip, checkable=True, short=short)
            a.setChecked(mode == "pan")
            a.triggered.connect(lambda _=False, m=mode: self.set_mode(m))
            self.group.addAction(a)
            self.tools[mode] = a
        self.delete = action(self, "&Delete measurement", "Delete", "Delete the selected measurements")
        self.delete.triggered.connect(self.delete_selected)
        self.clear_all = action(self, "Delete all measurements on this &image", "Ctrl+Shift+Delete",
                                "Remove every measurement of the image shown")
        self.clear_all.triggered.connect(self.clear_image_measurements)

    def actions(self) -> list[QAction]:
        return [*self.tools.values(), self.delete, self.clear_all]

    def add_to_window(self, win: QWidget, toolbar: QWidget | None) -> None:
        """A "Measure" menu after "View", and the tools on the toolbar."""
        mb = win.menuBar()  # type: ignore[attr-defined]
        menu = QMenu("&Measure", mb)
        menu.addActions(list(self.tools.values()))
        menu.addSeparator()
        menu.addActions([self.delete, self.clear_all])
        after = next((a for a in mb.actions() if a.text().replace("&", "") == "View"), None)
        following = mb.actions()[mb.actions().index(after) + 1] if after and after != mb.actions()[-1] else None
        mb.insertMenu(following, menu) if following is not None else mb.addMenu(menu)
        self.menu_action = menu.menuAction()
        if toolbar is not None:
            toolbar.addSeparator()
            toolbar.addActions([self.tools["distance"], self.tools["angle"], self.tools["cobb"]])

    # -- images --------------------------------------------------------------------------
    def set_image(self, path: str, meta: ImageMeta | None) -> None:
        """Show ``path``'s measurements (after the view shows its image)."""
        self._drop_items()
        self.path = path
        self.cal = calibration_for(meta)
        self.store.set_calibration(path, self.cal)
        w, h = self.view.image_size()
        self.scale = (w / meta.width, h / meta.height) if meta and meta.width and meta.height and w and h else (1.0, 1.0)
        for m in self.store.for_path(path):
            self.items.append(self._item(m))
        self._update_enabled()

    def clear_image(self) -> None:
        """No image shown (an error): no items; the stored measurements are kept."""
        self._drop_items()
        self.path = ""
        self._update_enabled()

    def _item(self, m: Measurement) -> MeasurementItem:
        return MeasurementItem(m, self.cal, self.scale, self.view.image_item())

    def _drop_items(self) -> None:
        self.cancel_draft()
        scene = self.view.scene()
        for it in self.items:
            scene.removeItem(it)
        self.items = []

    # -- modes ---------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        if mode == "pan" and self.draft is not None:
            self.cancel_draft()  # Esc while drawing: drop the drawing, stay in the tool
            self.tools[self.mode].setChecked(True)
            return
        self.cancel_draft()
        self.mode = mode
        self.tools[mode].setChecked(True)
        pan = mode == "pan"
        self.view.setDragMode(QGraphicsView.DragMode.ScrollHandDrag if pan else QGraphicsView.DragMode.NoDrag)
        if pan:
            self.view.viewport().unsetCursor()
        else:
            self.view.viewport().setCursor(Qt.CursorShape.CrossCursor)

    def cancel_draft(self) -> None:
        if self.draft is not None:
            self.view.scene().removeItem(self.draft)
            self.draft = None

    # -- drawing -------------------------------------------------------------------------
    def source_point(self, view_pos: QPointF) -> Point:
        """Viewport position -> source image pixel (clamped to the image)."""
        p = self.view.image_item().mapFromScene(self.view.mapToScene(view_pos.toPoint()))
        w, h = self.view.image_size()
        x, y = min(max(p.x(), 0.0), float(w)), min(max(p.y(), 0.0), float(h))
        return x / self.scale[0], y / self.scale[1]

    def press(self, p: Point) -> None:
        d = self.draft
        if d is None:
            self.draft = MeasurementItem(Measurement(self.mode, [p]), self.cal, self.scale, self.view.image_item())
            self.draft.floating = p
            self.draft.refresh()
        elif d.floating is None:  # Cobb: the second line starts
            d.m.points.append(p)
            d.floating = p
            d.refresh()
        else:
            self._fix(p)

    def move(self, p: Point) -> None:
        if self.draft is not None and self.draft.floating is not None:
            self.draft.floating = p
            self.draft.refresh()

    def release(self, p: Point, dragged: bool) -> None:
        if self.draft is not None and self.draft.floating is not None and dragged:
            self._fix(p)

    def _fix(self, p: Point) -> None:
        d = self.draft
        assert d is not None
        d.m.points.append(p)
        d.floating = None if d.m.complete or (d.m.kind == "cobb" and len(d.m.points) == 2) else p
        if d.m.complete:
            self.draft = None
            self.store.add(self.path, d.m)
            self.items.append(d)
            self.changed.emit(self.path)
            self._update_enabled()
        d.refresh()

    def add(self, kind: str, points: list[Point]) -> MeasurementItem:
        """Add a finished measurement to the image shown (scripts, tests)."""
        m = self.store.add(self.path, Measurement(kind, points))
        item = self._item(m)
        self.items.append(item)
        self.changed.emit(self.path)
        self._update_enabled()
        return item

    # -- deleting ------------------------------------------------------------------------
    def remove(self, item: MeasurementItem) -> None:
        if item in self.items:
            self.items.remove(item)
            self.store.remove(self.path, item.m)
            self.view.scene().removeItem(item)
            self.changed.emit(self.path)
        self._update_enabled()

    def delete_selected(self) -> int:
        chosen = [i for i in self.items if i.isSelected()]
        for i in chosen:
            self.remove(i)
        return len(chosen)

    def clear_image_measurements(self) -> int:
        n = len(self.items)
        for i in list(self.items):
            self.remove(i)
        return n

    def _update_enabled(self) -> None:
        self.items = [i for i in self.items if isValid(i)]  # the scene deletes its items when it goes
        self.delete.setEnabled(any(i.isSelected() for i in self.items))
        self.clear_all.setEnabled(bool(self.items))
        for a in self.tools.values():
            a.setEnabled(self.view.has_image() or a is self.tools["pan"])

    def context_menu(self, item: MeasurementItem) -> QMenu:
        """The menu of a measurement (right-click on it)."""
        self.view.scene().clearSelection()
        item.setSelected(True)
        menu = QMenu(self.view)
        menu.addAction(f"Delete {item.m.label(self.cal) or item.m.kind}", lambda: self.remove(item))
        menu.addAction(self.clear_all)
        self.menu = menu
        return menu

    # -- mouse on the viewport -------------------------------------------------------------
    def _item_at(self, view_pos: QPointF) -> QGraphicsItem | None:
        for it in self.view.items(view_pos.toPoint()):
            if isinstance(it, (MeasurementItem, Handle)) and it is not self.draft:
                return it
        return None

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        t = event.type()
        if t not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease,
                     QEvent.Type.MouseButtonDblClick) or not self.view.has_image():
            return False
        pos = event.position()  # type: ignore[attr-defined]
        button = event.button()  # type: ignore[attr-defined]
        if t == QEvent.Type.MouseButtonPress and button == Qt.MouseButton.RightButton:
            hit = self._item_at(pos)
            owner = hit.owner if isinstance(hit, Handle) else hit
            if isinstance(owner, MeasurementItem):
                self.context_menu(owner).popup(event.globalPosition().toPoint())  # type: ignore[attr-defined]
                return True
            return False
        if self.mode == "pan":
            return False
        if t in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick) and button == Qt.MouseButton.LeftButton:
            if self.draft is None and isinstance(self._item_at(pos), Handle):
                return False  # drag that point, as in pan mode
            self._press = pos
            self.press(self.source_point(pos))
            return True
        if t == QEvent.Type.MouseMove and self.draft is not None:
            self.move(self.source_point(pos))
            return not (event.buttons() & Qt.MouseButton.RightButton)  # type: ignore[attr-defined]
        if t == QEvent.Type.MouseButtonRelease and button == Qt.MouseButton.LeftButton and self._press is not None:
            start, self._press = self._press, None
            self.release(self.source_point(pos), math.dist((start.x(), start.y()), (pos.x(), pos.y())) > DRAG_PX)
            return True
        return False


def attach(win: QWidget) -> MeasureController:
    """The tools on the window's view (``win``: the ``MainWindow``), following the images it
    opens; a Measure menu after View and the tools on its toolbar."""
    m = MeasureController(win.view, win)  # type: ignore[attr-defined]
    s = win.service  # type: ignore[attr-defined]
    s.imageReady.connect(lambda r: m.set_image(r.path, r.image.meta))
    s.failed.connect(lambda r: m.clear_image() if r.stage == "load" else None)
    m.add_to_window(win, win.commands.toolbar)  # type: ignore[attr-defined]
    return m
