"""The scene items of a measurement: ``MeasurementItem`` (lines drawn with a cosmetic pen,
selectable and movable), its ``Handle`` per point (dragged to move that point) and its
``Label`` (the value, a fixed size on screen). A ``MeasurementItem`` is a child of the image
item, in image coordinates; its ``Measurement`` holds the points in source pixels
(``scale``: displayed pixels per source pixel), updated as the item or a handle moves.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject, QGraphicsRectItem, QGraphicsSceneMouseEvent

from ..core.measurements import POINTS_NEEDED, Calibration, Measurement, Point

LINE = QColor(255, 214, 10)  # yellow: visible on grey and distinct from the heatmap and lung outline
SELECTED = QColor(80, 220, 255)
SHADOW = QColor(0, 0, 0, 200)
HANDLE_PX = 9  # handle size on screen
PICK_PX = 8  # how close (screen px) a click must be to a line to pick it


def _view_scale(item: QGraphicsItem) -> float:
    views = item.scene().views() if item.scene() is not None else []
    return max(1e-6, views[0].transform().m11()) if views else 1.0


class Label(QGraphicsItem):
    """A measurement's text on a dark box, a fixed size on screen."""

    def __init__(self, parent: QGraphicsItem) -> None:
        super().__init__(parent)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.text = ""
        self.left = False  # drawn to the left of its anchor (anchors in the right half of the image)
        self.font = QFont()
        self.font.setPointSizeF(max(9.0, self.font.pointSizeF()))
        self.font.setBold(True)
        self._rect = QRectF()  # measured once per text, not on every paint and hit test

    def set_text(self, text: str, left: bool = False) -> None:
        if (text, left) == (self.text, self.left):
            return
        self.prepareGeometryChange()
        self.text, self.left = text, left
        self._rect = QRectF()
        if text:
            fm = QFontMetricsF(self.font)
            w, h = fm.horizontalAdvance(text) + 10, fm.height() + 4
            self._rect = QRectF(-w - 8 if left else 8, 6, w, h)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return self._rect

    def paint(self, painter: QPainter, option, widget=None) -> None:  # noqa: ANN001
        if not self.text:
            return
        r = self.boundingRect()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 170))
        painter.drawRoundedRect(r, 3, 3)
        painter.setFont(self.font)
        parent = self.parentItem()
        painter.setPen(SELECTED if parent is not None and parent.isSelected() else LINE)
        painter.drawText(r, Qt.AlignmentFlag.AlignCenter, self.text)


class Handle(QGraphicsRectItem):
    """One point of a measurement: drag it to move that point."""

    def __init__(self, owner: MeasurementItem, index: int) -> None:
        half = HANDLE_PX / 2
        super().__init__(-half, -half, HANDLE_PX, HANDLE_PX, owner)
        self.owner, self.index = owner, index
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setPen(QPen(SHADOW, 1))
        self.setBrush(SELECTED)
        self.setCursor(Qt.CursorShape.SizeAllCursor)
        self.setZValue(2)

    # dragged by hand, not with ItemIsMovable: Qt would move the selected owner instead
    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        event.accept() if event.button() == Qt.MouseButton.LeftButton else event.ignore()

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        self.setPos(self.owner.mapFromScene(event.scenePos()))
        self.owner.handle_moved(self.index, self.pos())


class MeasurementItem(QGraphicsObject):
    """Draws one ``Measurement``; ``scale`` = displayed pixels per source pixel (x, y)."""

    def __init__(self, m: Measurement, cal: Calibration, scale: tuple[float, float], parent: QGraphicsItem) -> None:
        super().__init__(parent)
        self.m, self.cal, self.scale = m, cal, scale
        self.floating: Point | None = None  # while drawing: the point under the mouse (source pixels)
        self._syncing = False
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
                      | QGraphicsItem.GraphicsItemFlag.ItemIsMovable
                      | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
        self.setZValue(5)
        self.setToolTip(f"{m.kind.capitalize()}: lengths from {cal.source}")
        self.label = Label(self)
        self.handles: list[Handle] = []
        self.refresh()

    # -- geometry ------------------------------------------------------------------------
    def local(self, p: Point) -> QPointF:
        """A source-pixel point in this item's coordinates."""
        return QPointF(p[0] * self.scale[0], p[1] * self.scale[1]) - self.pos()

    def points(self) -> list[Point]:
        return self.m.points + ([self.floating] if self.floating is not None else [])

    def path(self) -> QPainterPath:
        return self._path([self.local(p) for p in self.points()])

    def _path(self, pts: list[QPointF]) -> QPainterPath:
        path = QPainterPath()
        if self.m.kind == "angle":
            if pts:
                path.moveTo(pts[0])
                for q in pts[1:]:
                    path.lineTo(q)
        else:  # distance, cobb: separate segments
            for i in range(0, len(pts) - 1, 2):
                path.moveTo(pts[i])
                path.lineTo(pts[i + 1])
        return path

    def _margin(self) -> float:
        return (max(PICK_PX, HANDLE_PX) + 2) / _view_scale(self)

    def boundingRect(self) -> QRectF:  # noqa: N802
        m = self._margin()
        return self.path().boundingRect().adjusted(-m, -m, m, m)

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(2 * PICK_PX / _view_scale(self))
        return stroker.createStroke(self.path())

    def paint(self, painter: QPainter, option, widget=None) -> None:  # noqa: ANN001
        pts = [self.local(p) for p in self.points()]
        path = self._path(pts)
        for color, width in ((SHADOW, 3.5), (SELECTED if self.isSelected() else LINE, 1.6)):
            pen = QPen(color, width)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
        if self.m.kind == "cobb" and len(pts) == 4:  # join the two lines' middles (which lines are compared)
            pen = QPen(LINE, 1.0, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.drawLine((pts[0] + pts[1]) / 2, (pts[2] + pts[3]) / 2)

    # -- state ---------------------------------------------------------------------------
    def zoom_changed(self) -> None:
        self.prepareGeometryChange()

    def refresh(self) -> None:
        """Re-read the measurement: path, label and handles."""
        self.prepareGeometryChange()
        pts = self.points()
        probe = Measurement(self.m.kind, pts[: POINTS_NEEDED[self.m.kind]], id=self.m.id) if pts else None
        anchor = self._label_anchor(pts)
        parent = self.parentItem()
        middle = parent.boundingRect().center().x() if parent is not None else 0.0
        self.label.set_text(probe.label(self.cal) if probe is not None else "", (anchor + self.pos()).x() > middle)
        self.label.setPos(anchor)
        self._sync_handles()
        self.update()

    def _label_anchor(self, pts: list[Point]) -> QPointF:
        if not pts:
            return QPointF()
        if self.m.kind == "angle" and len(pts) >= 2:
            return self.local(pts[1])  # the vertex
        if self.m.kind == "cobb" and len(pts) == 4:
            return self.local((sum(p[0] for p in pts) / 4, sum(p[1] for p in pts) / 4))
        if self.m.kind == "distance" and len(pts) == 2 and self.floating is None:
            return self.local(((pts[0][0] + pts[1][0]) / 2, (pts[0][1] + pts[1][1]) / 2))
        return self.local(pts[-1])  # while drawing: beside the mouse

    def _sync_handles(self) -> None:
        self._syncing = True
        while len(self.handles) < len(self.m.points):
            self.handles.append(Handle(self, len(self.handles)))
        for i, h in enumerate(self.handles):
            if i < len(self.m.points):
                h.setPos(self.local(self.m.points[i]))
            h.setVisible(i < len(self.m.points) and self.isSelected() and self.floating is None)
        self._syncing = False
        self.label.update()  # its colour follows the selection

    def handle_moved(self, index: int, pos: QPointF) -> None:
        if self._syncing:
            return
        p = pos + self.pos()
        self.m.points[index] = (p.x() / self.scale[0], p.y() / self.scale[1])
        self.refresh()

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: object) -> object:  # noqa: N802
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionChange and not self._syncing:
            old, new = self.pos(), value
            d = new - old  # type: ignore[operator]
            self.m.moved(d.x() / self.scale[0], d.y() / self.scale[1])
        elif change == QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged:
            self._sync_handles()
        return super().itemChange(change, value)


