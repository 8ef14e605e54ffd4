"""The one-page PDF report, laid out with QPainter on Qt's own ``QPdfWriter`` (A4 portrait,
text as text, so it can be searched and copied). The words are ``core.report_text``'s."""

from __future__ import annotations

from PySide6.QtCore import QMarginsF, QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter, QPen, QPolygonF

from ..core.report_text import ReportText, pct
from ..core.windowing import legend_rgb
from ..viewer.convert import rgb_qimage

DPI = 300
MM = DPI / 25.4  # device units per millimetre
RED = QColor(122, 16, 32)
INK = QColor(25, 25, 30)
GREY = QColor(95, 95, 105)
CALL_BLUE = QColor(38, 132, 255)
BAR_GREY = QColor(150, 158, 170)
TRACK = QColor(228, 230, 234)
OP_ORANGE = QColor(235, 140, 0)
IN_BG, IN_FG = QColor(226, 242, 230), QColor(20, 90, 40)
OUT_BG, OUT_FG = QColor(255, 240, 200), QColor(110, 70, 0)
MAX_MEASUREMENTS = 8
WRAP = Qt.TextFlag.TextWordWrap
LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop


def _font(size: float, bold: bool = False, mono: bool = False) -> QFont:
    f = QFont("DejaVu Sans Mono" if mono else "DejaVu Sans")
    if mono:
        f.setStyleHint(QFont.StyleHint.Monospace)
    f.setPointSizeF(size)
    f.setBold(bold)
    return f


class Page:
    """A y cursor down the page's printable area."""

    def __init__(self, painter: QPainter, width: float, height: float) -> None:
        self.p, self.w, self.h, self.y = painter, width, height, 0.0

    def text(self, text: str, font: QFont, color: QColor = INK, x: float = 0.0, width: float | None = None,
             gap: float = 1.2 * MM, flags: Qt.AlignmentFlag = LEFT) -> float:
        """Wrapped text at the cursor; returns its height and moves the cursor below it."""
        width = self.w - x if width is None else width
        self.p.setFont(font)
        self.p.setPen(color)
        rect = self.p.boundingRect(QRectF(x, self.y, width, self.h), flags | WRAP, text)
        self.p.drawText(QRectF(x, self.y, width, rect.height()), flags | WRAP, text)
        self.y += rect.height() + gap
        return rect.height()

    def heading(self, text: str) -> None:
        self.y += 1.0 * MM
        self.text(text, _font(10.5, bold=True), INK, gap=0.8 * MM)
        self.p.setPen(QPen(QColor(200, 200, 205), 0.25 * MM))
        self.p.drawLine(QPointF(0, self.y), QPointF(self.w, self.y))
        self.y += 1.5 * MM


def _banner(page: Page, text: str, height: float) -> None:
    p = page.p
    p.fillRect(QRectF(0, page.y, page.w, height), RED)
    p.setFont(_font(12, bold=True))
    p.setPen(QColor(255, 255, 255))
    p.drawText(QRectF(0, page.y, page.w, height), Qt.AlignmentFlag.AlignCenter, text)
    page.y += height + 3 * MM


def _picture(page: Page, img: QImage | None, box: QRectF, caption: str, empty: str) -> None:
    """An image fitted in ``box`` (dark background, like the viewer), caption below."""
    p = page.p
    p.fillRect(box, QColor(12, 12, 14))
    if img is not None and not img.isNull():
        s = min(box.width() / img.width(), box.height() / img.height())
        size = QSizeF(img.width() * s, img.height() * s)
        target = QRectF(box.center().x() - size.width() / 2, box.center().y() - size.height() / 2,
                        size.width(), size.height())
        p.drawImage(target, img)
    else:
        p.setFont(_font(9))
        p.setPen(QColor(210, 210, 210))
        p.drawText(box.adjusted(4 * MM, 4 * MM, -4 * MM, -4 * MM), Qt.AlignmentFlag.AlignCenter | WRAP, empty)
        return  # the box says it: no caption
    p.setFont(_font(8))
    p.setPen(GREY)
    p.drawText(QRectF(box.left(), box.bottom() + 1 * MM, box.width(), 9 * MM), LEFT | WRAP, caption)


def _legend(p: QPainter, rect: QRectF) -> None:
    """"low [turbo colours] high", right-aligned in ``rect``."""
    p.setFont(_font(7.5))
    p.setPen(GREY)
    word = 7 * MM
    p.drawText(QRectF(rect.left(), rect.top(), word, rect.height()), Qt.AlignmentFlag.AlignVCenter, "low")
    p.drawText(QRectF(rect.right() - word, rect.top(), word, rect.height()),
               Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, "high")
    bar = QRectF(rect.left() + word, rect.center().y() - 1.2 * MM, rect.width() - 2 * word, 2.4 * MM)
    p.drawImage(bar, rgb_qimage(legend_rgb(256, 8)))


def _probability_table(page: Page, report: ReportText) -> None:
    p = page.p
    cols = (0.0, 0.27, 0.41, 0.57)  # class, probability, operating point, verdict; the bar after
    bar_x, bar_w = 0.78 * page.w, 0.22 * page.w
    row_h = 6.2 * MM
    p.setFont(_font(8, bold=True))
    p.setPen(GREY)
    for x, title in zip(cols, ("Class", "Probability", "Operating point", "vs operating point"), strict=True):
        p.drawText(QRectF(x * page.w, page.y, 0.3 * page.w, row_h), Qt.AlignmentFlag.AlignVCenter, title)
    page.y += row_h
    for r in report.rows:
        if r.call:
            p.fillRect(QRectF(0, page.y, page.w, row_h), QColor(232, 241, 255))
        p.setFont(_font(9.5, bold=r.call))
        p.setPen(INK)
        cells = (r.label + ("  (call)" if r.call else ""), pct(r.prob),
                 pct(r.op) if r.op is not None else "none", r.verdict())
        for x, cell in zip(cols, cells, strict=True):
            p.drawText(QRectF(x * page.w + 1 * MM, page.y, 0.3 * page.w, row_h), Qt.AlignmentFlag.AlignVCenter, cell)
        track = QRectF(bar_x, page.y + 1.6 * MM, bar_w - 1 * MM, row_h - 3.2 * MM)
        p.fillRect(track, TRACK)
        colour = CALL_BLUE if r.call else BAR_GREY if report.rows_valid else QColor(180, 140, 145)
        p.fillRect(QRectF(track.left(), track.top(), track.width() * max(0.0, min(1.0, r.prob)), track.height()),
                   colour)
        if r.op is not None:
            x = track.left() + track.width() * r.op
            p.setPen(QPen(OP_ORANGE, 0.5 * MM))
            p.drawLine(QPointF(x, track.top() - 0.8 * MM), QPointF(x, track.bottom() + 0.8 * MM))
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(OP_ORANGE)
            t = track.top() - 0.8 * MM
            p.drawPolygon(QPolygonF([QPointF(x - 1.2 * MM, t - 1.4 * MM), QPointF(x + 1.2 * MM, t - 1.4 * MM),
                                     QPointF(x, t)]))
        page.y += row_h
    page.y += 1.5 * MM


def _scope_box(page: Page, report: ReportText) -> None:
    bg, fg = (IN_BG, IN_FG) if report.in_scope else (OUT_BG, OUT_FG)
    p = page.p
    p.setFont(_font(9.5, bold=True))
    text = f"Scope: {report.scope}"
    rect = p.boundingRect(QRectF(2 * MM, page.y, page.w - 4 * MM, page.h), LEFT | WRAP, text)
    box = QRectF(0, page.y, page.w, rect.height() + 2.4 * MM)
    p.fillRect(box, bg)
    p.setPen(fg)
    p.drawText(box.adjusted(2 * MM, 1.2 * MM, -2 * MM, 0), LEFT | WRAP, text)
    page.y += box.height() + 2 * MM


def paint_report(painter: QPainter, width: float, height: float, report: ReportText, view: QImage,
                 heat: QImage | None, view_caption: str, heat_caption: str) -> float:
    """Lay the report out in ``width`` x ``height`` device units; returns the height used."""
    page = Page(painter, width, height)
    footer_h = 11 * MM
    _banner(page, f"{report.disclaimer}.", 9 * MM)
    top = page.y
    page.text(report.title, _font(16, bold=True), gap=0)
    page.y = top
    page.text(f"Exported {report.exported}", _font(8.5), GREY, flags=Qt.AlignmentFlag.AlignRight)
    page.y = top + 9 * MM
    page.text(f"File: {report.file_name}", _font(10.5, bold=True), gap=0.6 * MM)
    if report.image_line:
        page.text(report.image_line, _font(8.5), GREY, gap=0.4 * MM)
    page.y += 2.5 * MM  # the file's name only: a folder path can name the patient
    gap = 5 * MM
    pic_w = (width - gap) / 2
    pic_h = 88 * MM
    painter.setFont(_font(9, bold=True))
    painter.setPen(INK)
    painter.drawText(QRectF(0, page.y, pic_w, 5 * MM), Qt.AlignmentFlag.AlignVCenter, "View as shown")
    painter.drawText(QRectF(pic_w + gap, page.y, pic_w, 5 * MM), Qt.AlignmentFlag.AlignVCenter, "Grad-CAM heatmap")
    if heat is not None:
        _legend(painter, QRectF(pic_w + gap + 0.45 * pic_w, page.y, 0.55 * pic_w, 5 * MM))
    page.y += 5.5 * MM
    _picture(page, view, QRectF(0, page.y, pic_w, pic_h), view_caption, "No image.")
    _picture(page, heat, QRectF(pic_w + gap, page.y, pic_w, pic_h), heat_caption, heat_caption)
    page.y += pic_h + 10 * MM
    _scope_box(page, report)
    page.text(report.call, _font(11, bold=True), RED if not report.in_scope else INK, gap=1.5 * MM)
    if report.rows:
        if not report.rows_valid:
            page.text("NOT VALID for this image: shown on request; the model was not built for it.",
                      _font(9, bold=True), RED)
        _probability_table(page, report)
        page.text(f"Orange mark: the class's operating point. Decision rule (the model card's): "
                  f"{report.decision_rule}.", _font(7.5), GREY, gap=0.5 * MM)
    if report.measurements:
        page.heading("Measurements")
        shown = list(report.measurements[:MAX_MEASUREMENTS])
        if len(report.measurements) > MAX_MEASUREMENTS:
            shown.append(f"… and {len(report.measurements) - MAX_MEASUREMENTS} more (see the viewer)")
        page.text("\n".join(f"{i + 1}. {m}" for i, m in enumerate(shown)), _font(8.5), gap=0.5 * MM)
    page.heading(f"Model: {report.model}")
    page.text(f"SHA-256 {report.sha256}", _font(7.5, mono=True), gap=1.2 * MM)
    for head, text in report.card_lines:
        if page.y > height - footer_h - 8 * MM:
            break  # one page: the full card is in the viewer (Analysis > Model card)
        page.text(f"{head}: {text}", _font(7.8), INK, gap=0.9 * MM)
    # footer
    painter.setPen(QPen(RED, 0.4 * MM))
    fy = height - footer_h
    painter.drawLine(QPointF(0, fy), QPointF(width, fy))
    painter.setFont(_font(9, bold=True))
    painter.setPen(RED)
    painter.drawText(QRectF(0, fy + 1 * MM, width, 5 * MM), Qt.AlignmentFlag.AlignLeft, f"{report.disclaimer}.")
    painter.setFont(_font(7.5))
    painter.setPen(GREY)
    painter.drawText(QRectF(0, fy + 5.5 * MM, width, 5 * MM), Qt.AlignmentFlag.AlignLeft,
                     "Grad-CAM shows where the model looked, not where disease is. "
                     "Full model card with known confounders: RadLens, Analysis > Model card.")
    painter.drawText(QRectF(0, fy + 1 * MM, width, 5 * MM), Qt.AlignmentFlag.AlignRight, "RadLens · page 1 of 1")
    return page.y


def write_pdf(path: str, report: ReportText, view: QImage, heat: QImage | None, view_caption: str,
              heat_caption: str) -> bool:
    """Write the one-page report to ``path``; False when Qt could not write it."""
    writer = QPdfWriter(path)
    writer.setResolution(DPI)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                                     QMarginsF(14, 12, 14, 12), QPageLayout.Unit.Millimeter))
    writer.setTitle(f"RadLens report: {report.file_name}")
    writer.setCreator(f"RadLens ({report.disclaimer})")
    painter = QPainter()
    if not painter.begin(writer):
        return False
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    paint_report(painter, writer.width(), writer.height(), report, view, heat, view_caption, heat_caption)
    return painter.end()
