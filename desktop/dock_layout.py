"""The image keeps most of a small window: when the window gets narrow (900 x 600 on a
laptop), the side docks give up width instead of the image. Only when the image has
less than ``IMAGE_SHARE`` of the width are the docks narrowed, in proportion, so a
layout the user made in a large window is left alone. Docks can still be closed, floated
or tabbed together (Qt's own dock options).

Restoring the last session's layout (``restored``), a side dock is given at least
``READABLE_WIDTH`` (a small window's squeezed study list would otherwise stay too narrow to
read in the next, larger window) and at most ``RESTORE_SHARE`` of the window."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMainWindow, QScrollArea

IMAGE_SHARE = 0.56  # the image's least share of the window's width
DOCK_MIN_WIDTH = 110  # the narrowest a side dock gets (its contents scroll below that)
READABLE_WIDTH = 200  # the narrowest a restored side dock gets: the study list's names and calls can be read
RESTORE_SHARE = 0.3  # the widest a restored side dock gets, as a share of the window's width


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
        self._restoring = False
        win.installEventFilter(self)
        body = right.widget()
        self._content = body.widget() if isinstance(body, QScrollArea) else body
        if self._content is not None:  # new contents (a result) can need another width
            self._content.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if (obj is self.win and event.type() in (QEvent.Type.Resize, QEvent.Type.Show)) or \
                (obj is self._content and event.type() == QEvent.Type.LayoutRequest):
            self._timer.start()
        return False

    def restored(self) -> None:
        """The window restored a saved layout: once it is shown, the restored side docks are
        widened to a readable width (the analysis to what its contents need) and narrowed to
        a sane share of the window."""
        self._restoring = True
        self._timer.start()

    def _readable(self) -> None:
        docks = [d for d in (self.left, self.right) if self._docked(d)]
        most = int(RESTORE_SHARE * self.win.width())
        least = {self.left: READABLE_WIDTH, self.right: max(READABLE_WIDTH, _content_width(self.right))}
        sizes = [min(max(d.width(), least[d]), most) for d in docks]
        if docks and sizes != [d.width() for d in docks]:
            self.win.resizeDocks(docks, sizes, Qt.Orientation.Horizontal)

    def _docked(self, dock: QDockWidget) -> bool:
        return dock.isVisible() and not dock.isFloating() and \
            self.win.dockWidgetArea(dock) in (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea)

    def fit(self) -> None:
        """Narrow the side docks until the image has ``IMAGE_SHARE`` of the width; within the
        docks' width, the analysis (right) gets what its contents need first, so its
        percentages are never scrolled out of sight."""
        if self._restoring and self.win.isVisible():
            self._restoring = False
            self._readable()
            layout = self.win.layout()
            if layout is not None:
                layout.activate()  # the docks' new widths, before they are measured below
        w = self.win.width()
        central = self.win.centralWidget()
        docks = [d for d in (self.left, self.right) if self._docked(d)]
        used = sum(d.width() for d in docks)
        if central is None or not docks or used <= 0:
            return
        budget = max(0, int(w * (1 - IMAGE_SHARE)) - 8 * len(docks))  # minus the splitter handles
        room = min(used, budget)
        need = _content_width(self.right) if self.right in docks else 0
        squeezed = 0 < self.right.width() < need and len(docks) == 2 and room - need >= DOCK_MIN_WIDTH
        if central.width() >= IMAGE_SHARE * w and not squeezed:
            return
        if len(docks) == 2 and room - need >= DOCK_MIN_WIDTH:
            sizes = [room - need, need]
        else:
            sizes = [max(DOCK_MIN_WIDTH, int(d.width() * room / used)) for d in docks]
        if sizes != [d.width() for d in docks]:
            self.win.resizeDocks(docks, sizes, Qt.Orientation.Horizontal)


def _content_width(dock: QDockWidget) -> int:
    """The width a dock needs to show its contents without a horizontal scroll bar."""
    body = dock.widget()
    if isinstance(body, QScrollArea) and body.widget() is not None:
        return body.widget().minimumSizeHint().width() + body.verticalScrollBar().sizeHint().width() + \
            2 * body.frameWidth() + 4
    return body.minimumSizeHint().width() if body is not None else DOCK_MIN_WIDTH
