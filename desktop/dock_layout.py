"""The image keeps most of a small window: when the window gets narrow (900 x 600 on a
laptop), the side docks give up width instead of the image. Only when the image has
less than ``IMAGE_SHARE`` of the width are the docks narrowed, in proportion, so a
layout the user made in a large window is left alone. Docks can still be closed, floated
or tabbed together (Qt's own dock options)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMainWindow, QScrollArea

IMAGE_SHARE = 0.58  # the image's least share of the window's width
DOCK_MIN_WIDTH = 170  # the narrowest a side dock gets (its contents scroll below that)


class DockFitter(QObject):
    def __init__(self, win: QMainWindow, left: QDockWidget, right: QDockWidget) -> None:
        super().__init__(win)
        self.win, self.left, self.right = win, left, right
        for dock in (left, right):
            body = dock.widget()
            if isinstance(body, QScrollArea):  # a scrolling body need not be wider than this
                body.setMinimumWidth(min(body.minimumWidth(), DOCK_MIN_WIDTH))
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.fit)
        win.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if obj is self.win and event.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            self._timer.start()
        return False

    def _docked(self, dock: QDockWidget) -> bool:
        return dock.isVisible() and not dock.isFloating() and \
            self.win.dockWidgetArea(dock) in (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea)

    def fit(self) -> None:
        """Narrow the side docks, in proportion, until the image has ``IMAGE_SHARE`` of the width."""
        w = self.win.width()
        central = self.win.centralWidget()
        if central is None or central.width() >= IMAGE_SHARE * w:
            return
        docks = [d for d in (self.left, self.right) if self._docked(d)]
        used = sum(d.width() for d in docks)
        if not docks or used <= 0:
            return
        budget = max(0, int(w * (1 - IMAGE_SHARE)) - 8 * len(docks))  # minus the splitter handles
        sizes = [max(DOCK_MIN_WIDTH, int(d.width() * budget / used)) for d in docks]
        self.win.resizeDocks(docks, sizes, Qt.Orientation.Horizontal)
