"""The image view: a QGraphicsView with the radiograph and the Grad-CAM overlay.

Wheel zooms around the cursor, left-drag pans, right-drag changes window/level (the
view reports the drag; the window decides what it means). The overlay and the lung
outline are child items of the image item in image coordinates, so they stay aligned at
every zoom and pan. A banner along the top (why an image was not analysed, or that what is
shown is not valid for it) and a note along the bottom stay fixed on the screen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QPolygonF,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QLabel, QWidget

MIN_SCALE, MAX_SCALE = 0.01, 40.0
WHEEL_STEP = 1.0015  # per 1/8 degree of wheel rotation: one notch (120) = 1.2x
LUNG_COLOR = QColor(255, 64, 220)  # magenta: not in the turbo colour map, visible on grey
BANNER_STYLE = {
    "out": "background: rgba(90, 60, 0, 225); color: #ffe08a; border: 1px solid #e0b100;",
    "invalid": "background: rgba(150, 10, 30, 235); color: white; border: 2px solid #ff5060;",
}


class ImageView(QGraphicsView):
    windowDragStarted = Signal()
    windowDragged = Signal(float, float)  # total dx, dy in view pixels since the press
    windowDragFinished = Signal()
    zoomChanged = Signal(float)  # current scale (1.0 = one image pixel per screen pixel)
    navigate = Signal(int)  # Up/Down on the image: previous/next image of the study
    labelsPlaced = Signal()  # the banner and note were laid out (corner text follows them)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._image_item = QGraphicsPixmapItem()
        self._image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._image_item.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
        self.scene().addItem(self._image_item)
        self._overlay = QGraphicsPixmapItem(self._image_item)  # child: shares every transform
        self._overlay.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay.setZValue(1)
        self._overlay.setVisible(False)
        self._overlay_wanted = False
        self._lungs = QGraphicsPathItem(self._image_item)  # child: image coordinates
        pen = QPen(LUNG_COLOR, 2.0)
        pen.setCosmetic(True)  # 2 screen pixels at every zoom
        self._lungs.setPen(pen)
        self._lungs.setBrush(Qt.BrushStyle.NoBrush)
        self._lungs.setZValue(2)
        self._lungs.setVisible(False)
        self._lungs_wanted = False
        self._banner = self._floating_label("viewBanner")
        self._note = self._floating_label("viewNote")
        self._note.setStyleSheet("QLabel#viewNote { background: rgba(20, 20, 24, 210); color: #e8e8e8; "
                                 "border-radius: 3px; padding: 3px 6px; }")
        self._has_image = False
        self._fit = True
        self._message = "Drop chest radiographs (PNG, JPEG, DICOM) or a folder here,\nor use File > Open."
        self._wl_origin: QPointF | None = None
        self.setBackgroundBrush(QColor(12, 12, 14))
        self.setRenderHints(QPainter.RenderHint.SmoothPixmapTransform | QPainter.RenderHint.Antialiasing)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)  # right button = window/level
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        # no scroll bars (pan by dragging): bars appearing on zoom would resize the viewport
        # and shift the image under the cursor
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # drops are handled by the main window: let them through
        self.setAcceptDrops(False)
        self.viewport().setAcceptDrops(False)

    def _floating_label(self, name: str) -> QLabel:
        """A label over the viewport (a child of the view, not of the viewport, so it is never
        scrolled with the picture), transparent to the mouse."""
        label = QLabel(self)
        label.setObjectName(name)
        label.setWordWrap(True)
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        label.setVisible(False)
        return label

    # -- content -------------------------------------------------------------------------
    def has_image(self) -> bool:
        return self._has_image

    def set_image(self, image: QImage, reset_view: bool = True) -> None:
        """Show a new image (reset_view: fit it to the window)."""
        first = not self._has_image
        self._image_item.setPixmap(QPixmap.fromImage(image))
        self._has_image = True
        self._message = ""
        self.setSceneRect(QRectF(0, 0, image.width(), image.height()))
        self._overlay.setVisible(False)
        self._overlay.setPixmap(QPixmap())
        self.set_lung_outline(None)
        if reset_view or first:
            self.fit_to_window()
        self.viewport().update()

    def update_image(self, image: QImage) -> None:
        """Replace the pixels of the current image (window/level change): view unchanged."""
        self._image_item.setPixmap(QPixmap.fromImage(image))

    def clear(self, message: str) -> None:
        """No image: show a message (why) in the view instead."""
        self._image_item.setPixmap(QPixmap())
        self._overlay.setPixmap(QPixmap())
        self._overlay.setVisible(False)
        self.set_lung_outline(None)
        self.set_banner("")
        self.set_note("")
        self._has_image = False
        self._message = message
        self.setSceneRect(QRectF(0, 0, 1, 1))
        self.resetTransform()
        self.viewport().update()

    def message(self) -> str:
        return self._message

    def image_item(self) -> QGraphicsPixmapItem:
        """The image's item: measurements and overlays are its children (image pixels)."""
        return self._image_item

    def image_size(self) -> tuple[int, int]:
        pm = self._image_item.pixmap()
        return pm.width(), pm.height()

    # -- overlay -------------------------------------------------------------------------
    def set_overlay(self, image: QImage | None) -> None:
        """An overlay (any resolution) stretched over the whole image."""
        if image is None or image.isNull() or not self._has_image:
            self._overlay.setPixmap(QPixmap())
            self._overlay.setVisible(False)
            return
        w, h = self.image_size()
        self._overlay.setPixmap(QPixmap.fromImage(image))
        self._overlay.setTransform(QTransform.fromScale(w / image.width(), h / image.height()))
        self._overlay.setVisible(self._overlay_wanted)

    def set_overlay_visible(self, visible: bool) -> None:
        self._overlay_wanted = visible
        self._overlay.setVisible(visible and not self._overlay.pixmap().isNull())

    def overlay_visible(self) -> bool:
        return self._overlay.isVisible()

    def set_overlay_opacity(self, opacity: float) -> None:
        self._overlay.setOpacity(max(0.0, min(1.0, opacity)))

    def overlay_item(self) -> QGraphicsPixmapItem:
        return self._overlay

    # -- lung outline --------------------------------------------------------------------
    def set_lung_outline(self, contours: Sequence[np.ndarray] | None, mask_hw: tuple[int, int] | None = None) -> None:
        """Polygons ((x, y) in the pixels of a mask of size ``mask_hw``, default the image's)
        drawn over the image; None or empty: no outline."""
        path = QPainterPath()
        for c in contours or ():
            path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in c]))
            path.closeSubpath()
        self._lungs.setPath(path)
        w, h = self.image_size()
        if mask_hw and w and h and mask_hw[0] and mask_hw[1]:
            self._lungs.setTransform(QTransform.fromScale(w / mask_hw[1], h / mask_hw[0]))
        else:
            self._lungs.setTransform(QTransform())
        self._lungs.setVisible(self._lungs_wanted and self.has_lung_outline())

    def has_lung_outline(self) -> bool:
        return self._has_image and not self._lungs.path().isEmpty()

    def set_lung_outline_visible(self, visible: bool) -> None:
        self._lungs_wanted = visible
        self._lungs.setVisible(visible and self.has_lung_outline())

    def lung_outline_visible(self) -> bool:
        return self._lungs.isVisible()

    def lung_outline_item(self) -> QGraphicsPathItem:
        return self._lungs

    # -- banner and note -----------------------------------------------------------------
    def set_banner(self, text: str, kind: str = "out") -> None:
        """A sentence along the top of the view ("" hides it). ``kind``: "out" (amber: the
        image was not analysed) or "invalid" (red: results shown that are not valid)."""
        self._banner.setText(text)
        self._banner.setStyleSheet(f"QLabel#viewBanner {{ {BANNER_STYLE.get(kind, BANNER_STYLE['out'])} "
                                   "font-weight: bold; border-radius: 3px; padding: 5px 8px; }")
        self._banner.setVisible(bool(text))
        self._place_labels()

    def banner(self) -> str:
        return self._banner.text() if not self._banner.isHidden() else ""

    def set_note(self, text: str) -> None:
        """A short note at the bottom left of the view ("" hides it)."""
        self._note.setText(text)
        self._note.setVisible(bool(text))
        self._place_labels()

    def note(self) -> str:
        return self._note.text() if not self._note.isHidden() else ""

    def _place_labels(self) -> None:
        vp = self.viewport().geometry()
        margin = 8
        width = max(60, vp.width() - 2 * margin)
        self._banner.setFixedWidth(width)
        # the height its wrapped text needs at this width: adjustSize() keeps the size hint of an
        # earlier, wider width, so a narrowed view (a compare pane) cut the sentence off
        self._banner.resize(width, max(0, self._banner.heightForWidth(width)))  # -1 for no text
        self._banner.move(vp.left() + margin, vp.top() + margin)
        self._banner.raise_()
        natural = self._note.fontMetrics().horizontalAdvance(self._note.text()) + 16  # + padding
        self._note.setFixedWidth(min(width, natural))
        self._note.adjustSize()
        self._note.move(vp.left() + margin, vp.bottom() - margin - self._note.height())
        self._note.raise_()
        self.labelsPlaced.emit()

    # -- zoom and pan --------------------------------------------------------------------
    def scale_factor(self) -> float:
        return self.transform().m11()

    def fit_to_window(self) -> None:
        self._fit = True
        if self._has_image:
            self.fitInView(self._image_item, Qt.AspectRatioMode.KeepAspectRatio)
        self.zoomChanged.emit(self.scale_factor())

    def actual_size(self) -> None:
        self._fit = False
        center = self.mapToScene(self.viewport().rect().center())
        self.setTransform(QTransform())
        self.centerOn(center)
        self.zoomChanged.emit(1.0)

    def zoom_by(self, factor: float, anchor_view_pos: QPointF | None = None) -> None:
        """Zoom by ``factor`` keeping the scene point under ``anchor_view_pos`` fixed
        (default: the view centre)."""
        if not self._has_image:
            return
        current = self.scale_factor()
        factor = max(MIN_SCALE / current, min(MAX_SCALE / current, factor))
        if anchor_view_pos is None:
            anchor_view_pos = QPointF(self.viewport().rect().center())
        before = self.mapToScene(anchor_view_pos.toPoint())
        old_anchor = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.scale(factor, factor)
        self.setTransformationAnchor(old_anchor)
        # scroll so the scene point that was under the anchor is under it again
        moved = self.transform().map(before) - self.transform().map(self.mapToScene(anchor_view_pos.toPoint()))
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() + round(moved.x()))
        v.setValue(v.value() + round(moved.y()))
        self._fit = False
        self.zoomChanged.emit(self.scale_factor())

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y()
        if not steps or not self._has_image:
            event.ignore()
            return
        self.zoom_by(WHEEL_STEP ** steps, event.position())
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: ANN001, N802
        super().resizeEvent(event)
        self._place_labels()
        if self._fit and self._has_image:
            self.fitInView(self._image_item, Qt.AspectRatioMode.KeepAspectRatio)
            self.zoomChanged.emit(self.scale_factor())

    # -- right-drag: window/level ----------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.RightButton and self._has_image:
            self._wl_origin = event.position()
            self.viewport().setCursor(Qt.CursorShape.SizeAllCursor)
            self.windowDragStarted.emit()
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._wl_origin is not None:
            d = event.position() - self._wl_origin
            self.windowDragged.emit(d.x(), d.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._wl_origin is not None and event.button() == Qt.MouseButton.RightButton:
            self._wl_origin = None
            self.viewport().unsetCursor()
            self.windowDragFinished.emit()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: ANN001, N802
        if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down) and not event.modifiers():
            self.navigate.emit(-1 if event.key() == Qt.Key.Key_Up else 1)
            event.accept()
            return
        super().keyPressEvent(event)

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        if self._has_image or not self._message:
            return
        painter.save()
        painter.resetTransform()
        painter.setPen(QColor(200, 200, 200))
        f = painter.font()
        f.setPointSizeF(f.pointSizeF() * 1.2)
        painter.setFont(f)
        r = self.viewport().rect().adjusted(40, 40, -40, -40)
        painter.drawText(r, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message)
        painter.restore()
