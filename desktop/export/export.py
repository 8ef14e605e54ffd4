"""File > Export view as PNG… and File > Export report as PDF….

The PNG is what is on screen: the central widget grabbed as it is drawn (image at the
current window/level, the heatmap and lung outline when shown, the measurements, which are
items of the view's scene, the banner, the corner text with its AI line), with the notice and
the model's call burnt into a strip added below it: the canvas grows, nothing on screen is
covered, and the strip's text is wrapped to the width (``notice_layout``). Patient identifiers
shown in the corner text (View > Show patient identifiers) go into an export only after the
user confirms it; otherwise the picture is drawn without them. The PDF is one A4 page written with Qt's own ``QPdfWriter``
(``export_pdf``); its words come from ``core.report_text``. Both are written atomically (a
temporary file beside the target, then a rename); a failure is a dialog saying why."""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QObject, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter
from PySide6.QtWidgets import QMainWindow, QWidget

from engine import DISCLAIMER

from ..core.atomic_file import ExportError, atomic_write
from ..core.measurements import MeasurementStore
from ..core.report_text import ReportText, build_report, view_caption
from ..viewer.convert import gray_qimage, rgba_qimage
from ..viewer.display_control import DisplayController, action
from .export_pdf import write_pdf

NOTICE_BG = QColor(122, 16, 32)  # #7a1020, the notice's colour everywhere in the viewer
NOTICE_FG = QColor(255, 255, 255)
PNG_FILTER = "PNG images (*.png)"
PDF_FILTER = "PDF documents (*.pdf)"
HEAT_MAX = 1400  # the PDF's Grad-CAM picture is at most this many pixels a side
EXPORT_BG = QColor(12, 12, 14)  # the view's background, beside a picture narrower than the strip
MIN_EXPORT_WIDTH = 320  # an exported PNG is at least this wide, so the notice reads at NOTICE_MIN_PX
NOTICE_MIN_PX, NOTICE_MAX_PX = 11, 44  # the strip's text size in pixels: 1/70 of the width, within these
CAPTION_MAX_LINES = 6  # a longer caption is elided at the end of its last line


@dataclass(frozen=True)
class NoticeLayout:
    """Where everything goes in an exported PNG: the shot unchanged at the top (centred on a dark
    background when it is narrower than ``MIN_EXPORT_WIDTH``), then a strip below it, outside
    the picture, with the notice (bold) and the caption, each wrapped to the width: one rect
    per line, none overlapping, all inside the canvas."""

    size: QSize  # the whole canvas
    image: QRect  # where the shot is drawn, at its own size
    strip: QRect  # the dark red strip under the picture
    notice_font: QFont
    caption_font: QFont
    notice: tuple[tuple[QRect, str], ...]  # (line's rect, its text)
    caption: tuple[tuple[QRect, str], ...]


def _break_word(word: str, fm: QFontMetrics, width: int) -> list[str]:
    """A word wider than ``width`` in pieces that fit (a long file name: nothing is cut off)."""
    pieces, cur = [], ""
    for ch in word:
        if cur and fm.horizontalAdvance(cur + ch) > width:
            pieces.append(cur)
            cur = ""
        cur += ch
    return [*pieces, cur] if cur else pieces


def wrap_text(text: str, fm: QFontMetrics, width: int, max_lines: int = 0) -> list[str]:
    """``text`` in lines no wider than ``width`` (words kept whole when they fit); with
    ``max_lines``, the last line is elided when there is more."""
    lines: list[str] = []
    cur = ""
    for word in text.split():
        parts = [word] if fm.horizontalAdvance(word) <= width else _break_word(word, fm, width)
        for i, part in enumerate(parts):
            joined = f"{cur} {part}" if cur and i == 0 else cur + part if cur else part
            if cur and (i > 0 or fm.horizontalAdvance(joined) > width):
                lines.append(cur)
                cur = part
            else:
                cur = joined
    if cur:
        lines.append(cur)
    if max_lines and len(lines) > max_lines:
        rest = " ".join(lines[max_lines - 1:])
        lines = [*lines[: max_lines - 1], fm.elidedText(rest, Qt.TextElideMode.ElideRight, width)]
    return lines or [""]


def notice_font_px(width: int) -> int:
    """The notice's text size for a canvas ``width`` pixels wide."""
    return max(NOTICE_MIN_PX, min(NOTICE_MAX_PX, round(width / 70)))


def notice_layout(shot: QSize, caption: str, base: QFont | None = None) -> NoticeLayout:
    """The layout of an exported PNG of ``shot`` with the notice and ``caption`` (see
    ``NoticeLayout``); ``base``: the font family to use (the application's by default)."""
    sw, sh = max(0, shot.width()), max(0, shot.height())
    width = max(sw, MIN_EXPORT_WIDTH)
    px = notice_font_px(width)
    bold = QFont(base if base is not None else QFont())
    bold.setPixelSize(px)
    bold.setBold(True)
    plain = QFont(bold)
    plain.setBold(False)
    pad = max(4, px // 2)
    text_w = width - 2 * pad
    notice_fm, caption_fm = QFontMetrics(bold), QFontMetrics(plain)
    y = sh + pad
    notice = []
    for line in wrap_text(f"{DISCLAIMER}.", notice_fm, text_w):
        notice.append((QRect(pad, y, text_w, notice_fm.height()), line))
        y += max(notice_fm.height(), notice_fm.lineSpacing())
    caption_lines = []
    if caption.strip():
        y += max(2, px // 4)
        for line in wrap_text(caption, caption_fm, text_w, CAPTION_MAX_LINES):
            caption_lines.append((QRect(pad, y, text_w, caption_fm.height()), line))
            y += max(caption_fm.height(), caption_fm.lineSpacing())
    last = (caption_lines or notice)[-1][0]
    height = last.bottom() + 1 + pad
    return NoticeLayout(QSize(width, height), QRect((width - sw) // 2, 0, sw, sh), QRect(0, sh, width, height - sh),
                        bold, plain, tuple(notice), tuple(caption_lines))


def burn_notice(shot: QImage, caption: str) -> QImage:
    """``shot`` with a dark red strip added below it (the canvas grows; nothing of the shot is
    covered) holding the notice (bold) and ``caption``, wrapped to the width (``notice_layout``)."""
    lay = notice_layout(shot.size(), caption)
    out = QImage(lay.size, QImage.Format.Format_RGB32)
    out.fill(EXPORT_BG)
    p = QPainter(out)
    p.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    p.drawImage(lay.image.topLeft(), shot)
    p.fillRect(lay.strip, NOTICE_BG)
    p.setPen(NOTICE_FG)
    flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextSingleLine
    for font, lines in ((lay.notice_font, lay.notice), (lay.caption_font, lay.caption)):
        p.setFont(font)
        for rect, text in lines:
            p.drawText(rect, flags, text)
    p.end()
    return out


def grab(widget: QWidget) -> QImage:
    """The widget (and its children: the view's banner and notes) as drawn, at its size in
    device-independent pixels."""
    img = widget.grab().toImage()
    if img.devicePixelRatio() != 1.0:
        img = img.scaled(widget.width(), widget.height(), Qt.AspectRatioMode.IgnoreAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
        img.setDevicePixelRatio(1.0)
    return img


def heat_picture(display: DisplayController, heat: tuple, class_index: int, opacity: float) -> QImage | None:
    """The whole image at its current window/level with ``class_index``'s Grad-CAM over it
    (None: no image; the bare image when the class has no evidence or there is no heatmap)."""
    u8 = display.displayed()
    if u8 is None:
        return None
    base = gray_qimage(u8).convertToFormat(QImage.Format.Format_RGB32)
    if max(base.width(), base.height()) > HEAT_MAX:
        base = base.scaled(HEAT_MAX, HEAT_MAX, Qt.AspectRatioMode.KeepAspectRatio,
                           Qt.TransformationMode.SmoothTransformation)
    if 0 <= class_index < len(heat) and not display.no_evidence(class_index):
        p = QPainter(base)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.setOpacity(max(0.0, min(1.0, opacity)))
        p.drawImage(QRectF(base.rect()), rgba_qimage(heat[class_index]))
        p.end()
    return base


def save_png(image: QImage, path: str) -> None:
    """Write ``image`` as a PNG at ``path`` atomically; ExportError says why it failed."""
    atomic_write(path, lambda tmp: image.save(tmp, "PNG"), "PNG")


def measurement_lines(win: QObject, path: str) -> list[str]:
    """The image's measurements as "distance: 41.2 mm (...)" lines (none without the tools,
    ``win.measure``)."""
    store = getattr(getattr(win, "measure", None), "store", None)
    if not isinstance(store, MeasurementStore):
        return []
    cal = store.calibration(path)
    return [f"{m.kind}: {m.label(cal)}" for m in store.for_path(path) if m.label(cal)]


class Exporter(QObject):
    """The two export actions of ``win`` (placed in its File menu by the window)."""

    def __init__(self, win: QMainWindow) -> None:  # the MainWindow (not imported: no cycle)
        super().__init__(win)
        self.win = win
        self.png = action(win, "Export view as &PNG…", "Ctrl+E", "Save what the view shows, with the notice and "
                          "the model's call burnt in")
        self.pdf = action(win, "Export &report as PDF…", "Ctrl+Shift+E", "A one-page PDF report: the view, the "
                          "heatmap, the probabilities, the call and the model")
        self.png.triggered.connect(lambda: self.export_png())
        self.pdf.triggered.connect(lambda: self.export_pdf())

    def _suggest(self, suffix: str) -> str:
        stem = os.path.splitext(os.path.basename(self.win.current_path))[0] or "radlens"
        return os.path.join(self.win.settings.last_folder or os.path.expanduser("~"), f"{stem}-{suffix}")

    def _ready(self, what: str) -> bool:
        if not self.win.view.has_image():
            self.win.dialogs.error(f"Export {what}", "Nothing to export: open an image first.")
            return False
        return True

    def _include_identifiers(self, what: str) -> bool:
        """Ask before burning the patient's name, ID, age and sex into an export, when the
        corner text shows them (False: nothing shown, or the user declined: leave them out)."""
        corner = getattr(self.win, "corner", None)
        if corner is None or not corner.shows_identifiers():
            return False
        return bool(self.win.dialogs.confirm(
            f"Export {what}: patient identifiers",
            "The view shows the patient's name, ID, age and sex (View > Show patient identifiers). "
            f"Burn them into the exported {what}? Anyone who receives the file can read them.\n\n"
            "Cancel exports without them.", "Include identifiers"))

    def _corners(self, identifiers: bool):  # noqa: ANN202 - a context manager
        corner = getattr(self.win, "corner", None)
        return corner.identifiers_hidden(not identifiers) if corner is not None else nullcontext()

    def view_image(self, identifiers: bool = False) -> QImage:
        """What the window shows in its centre (one view, or both sides in compare mode), with
        the notice and the call burnt in; the corner text's identifiers only with ``identifiers``."""
        w = self.win
        w.display.flush()
        reason = w.analysis.state_text() if w.prediction is None else ""
        caption = view_caption(w.prediction, w.current_path, reason)
        cmp = getattr(w, "compare", None)
        if cmp is not None and cmp.active:  # both sides are in the picture: both calls in the caption
            right = cmp.result.prediction if cmp.result is not None else None
            caption = f"Left: {caption}  |  Right: {view_caption(right, cmp.other_path, 'not analysed yet')}"
        with self._corners(identifiers):
            shot = grab(w.centralWidget())
        return burn_notice(shot, caption)

    def export_png(self, path: str = "") -> str:
        """Ask where (unless ``path``), write the PNG; returns the path written ("" if none)."""
        if not self._ready("view"):
            return ""
        path = path or self.win.dialogs.save_file("Export view as PNG", self._suggest("view.png"), PNG_FILTER, ".png")
        if not path:
            return ""
        image = self.view_image(self._include_identifiers("PNG"))
        try:
            save_png(image, path)
        except ExportError as e:
            self.win.dialogs.error("Export view as PNG", str(e))
            return ""
        self.win.statusBar().showMessage(f"Saved the view to {path}", 8000)
        return path

    def report(self) -> ReportText:
        w = self.win
        c = w.classifier
        return build_report(w.current_path, w.prediction, c.card if c is not None else None,
                            c.sha256 if c is not None else "", datetime.now().astimezone(),
                            meta=None, measurements=measurement_lines(w, w.current_path),
                            shown_anyway=w.analysis.probs.shown_anyway(),
                            no_analysis_reason=w.model_reason or w.analysis.state_text())

    def pictures(self, identifiers: bool = False) -> tuple[QImage, QImage | None, str]:
        """(the view as shown, the image with the call's heatmap or None, its caption); the corner
        text's identifiers only with ``identifiers``."""
        w = self.win
        w.display.flush()
        with self._corners(identifiers):
            shot = grab(w.view)
        r = w.results.result
        p = w.prediction
        if r is None or p is None:
            return shot, None, "No heatmap: the image has not been analysed."
        if not p.in_scope and not w.analysis.probs.shown_anyway():
            return shot, None, "No heatmap: not analysed (out of scope)."
        i = w.display.cam_class() if w.display.has_heatmaps() else p.top_index
        label = p.labels[i]
        which = "the call" if p.in_scope and i == p.top_index else "NOT VALID" if not p.in_scope else "not the call"
        heat = heat_picture(w.display, r.heat, i, max(0.6, w.analysis.cam.opacity_value()))
        note = "no evidence for this class" if w.display.no_evidence(i) else "where the model looked"
        return shot, heat, f"Grad-CAM: {label} ({which}); {note}"

    def export_pdf(self, path: str = "") -> str:
        """Ask where (unless ``path``), write the one-page report; returns the path written."""
        if not self._ready("report"):
            return ""
        path = path or self.win.dialogs.save_file("Export report as PDF", self._suggest("report.pdf"), PDF_FILTER,
                                                  ".pdf")
        if not path:
            return ""
        shot, heat, heat_caption = self.pictures(self._include_identifiers("PDF"))
        view_caption_text = f"Window {self.win.wl_label.text()}" if self.win.wl_label.text() else "As shown"
        try:
            atomic_write(path, lambda tmp: write_pdf(tmp, self.report(), shot, heat, view_caption_text, heat_caption),
                         "PDF")
        except ExportError as e:
            self.win.dialogs.error("Export report as PDF", str(e))
            return ""
        self.win.statusBar().showMessage(f"Saved the report to {path}", 8000)
        return path
