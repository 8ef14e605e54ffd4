"""Background work: model loading, opening + analysing the current image, the study
browser's thumbnails and predictions. The GUI thread never decodes or runs the model.

Each worker is a QObject moved to its own QThread. Requests go in by queued signals
carrying frozen dataclasses; results come back the same way. A ``Generation`` counter,
bumped by the GUI for every new request, lets workers skip requests that are already
stale and lets the GUI drop results that arrive after the user moved on (ndv's habit).
"""

from __future__ import annotations

import logging
import os
import threading
import time

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from engine import Classifier, LoadedImage, Prediction, RadLensError, classify
from engine.ai.cam import card_cam_scale

from .core.decoder import Decoder, shared_decoder
from .core.gates import Busy, Generation
from .core.messages import (
    AnalysisDone,
    Failure,
    ImageReady,
    ModelReady,
    ModelRequest,
    OpenRequest,
    StudyItem,
    StudyRequest,
    TagsReady,
)
from .core.windowing import ClassHeatmaps, class_heatmaps, make_display_source, thumbnail

log = logging.getLogger(__name__)


BACKGROUND_NICE = 5
WARM_AFTER_MODEL_MS = 300


def background_priority(nice: int = BACKGROUND_NICE) -> None:
    """Lower the calling thread's CPU priority (Linux: threads have their own nice value;
    threads it starts later, e.g. onnxruntime's pool, inherit it). On a 2-core machine
    the GUI thread then gets a core at once instead of waiting a scheduler slice behind
    inference and decoding. Elsewhere, or if refused, nothing changes."""
    if not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, max(current, nice))
    except OSError as e:
        log.debug("could not lower the priority of %s: %s", threading.current_thread().name, e)


def describe_error(e: BaseException) -> str:
    """A user-facing message: engine errors carry their own; anything else is a bug."""
    if isinstance(e, RadLensError):
        return str(e)
    log.error("unexpected error in a worker", exc_info=e)
    return f"unexpected error ({type(e).__name__}: {e}). Details are in the log file; please report it."


# -- workers -------------------------------------------------------------------------------
def all_heatmaps(pred: Prediction, card: object = None) -> ClassHeatmaps:
    """Every class's overlay on one scale: the card's ``cam_scale`` when it has one, else
    the image's top-class peak (``engine.ai.cam``)."""
    return class_heatmaps(pred, card_cam_scale(card))


class AnalysisWorker(QObject):
    """Loads models and opens + analyses the image the user is looking at."""

    imageReady = Signal(object)
    analysed = Signal(object)
    tagsReady = Signal(object)
    failed = Signal(object)
    modelReady = Signal(object)

    def __init__(self, generation: Generation, model_generation: Generation, busy: Busy, decoder: Decoder) -> None:
        super().__init__()
        self._decoder = decoder
        self._gen = generation
        self._model_gen = model_generation
        self._busy = busy  # one begin() per request, by the GUI; end() here when it is done

    @Slot()
    def lower_priority(self) -> None:
        background_priority()  # before the model loads here: onnxruntime's threads inherit it

    def _stale(self, req: OpenRequest) -> bool:
        return req.generation != self._gen.value

    @Slot(object)
    def load_model(self, req: ModelRequest) -> None:
        if req.generation != self._model_gen.value:
            return
        t0 = time.perf_counter()
        try:
            clf = Classifier(req.path, device=req.device)
        except Exception as e:  # noqa: BLE001 - errors are values
            self.modelReady.emit(ModelReady(req.generation, req.path, None, describe_error(e)))
            return
        self.modelReady.emit(ModelReady(req.generation, req.path, clf, "", time.perf_counter() - t0))

    @Slot(object)
    def open(self, req: OpenRequest) -> None:
        try:
            if not self._stale(req):
                self._open(req)
        finally:
            self._busy.end()

    def _open(self, req: OpenRequest) -> None:
        t0 = time.perf_counter()
        try:
            image = self._decoder.load(req.path)
            display = make_display_source(image)
            thumb = thumbnail(image.pixels)
        except Exception as e:  # noqa: BLE001
            self.failed.emit(Failure(req.generation, req.path, "load", describe_error(e)))
            self._tags(req)
            return
        self.imageReady.emit(ImageReady(req.generation, req.path, image, display, thumb, time.perf_counter() - t0))
        if req.classifier is not None and not self._stale(req):
            t1 = time.perf_counter()
            try:
                pred = classify(image, req.classifier)  # the engine's per-image job
                heat = all_heatmaps(pred, req.classifier.card)
            except Exception as e:  # noqa: BLE001
                self.failed.emit(Failure(req.generation, req.path, "analysis", describe_error(e)))
            else:
                self.analysed.emit(AnalysisDone(req.generation, req.path, pred, heat.rgba, time.perf_counter() - t1,
                                                cam_scale=heat.scale, evidence=heat.evidence))
        self._tags(req, image)

    def _no_tags(self, req: OpenRequest, fmt: str) -> None:
        what = {"png": "a PNG", "jpeg": "a JPEG"}.get(fmt, "not a DICOM")
        self.tagsReady.emit(TagsReady(req.generation, req.path, (), f"This file is {what} image: it has no DICOM tags."))

    def _tags(self, req: OpenRequest, image: LoadedImage | None = None) -> None:
        if not req.want_tags or self._stale(req):
            return
        if image is not None:  # the loader parsed the header once and returned its rows
            if image.meta.format == "dicom":
                self.tagsReady.emit(TagsReady(req.generation, req.path, tuple(image.tags), ""))
            else:
                self._no_tags(req, image.meta.format)
            return
        # The image did not load: show what header there is (an error path, so a second read is fine).
        from engine.io.fileio import sniff_format

        try:
            with open(req.path, "rb") as f:
                kind = sniff_format(f.read(132))
        except OSError as e:
            self.tagsReady.emit(TagsReady(req.generation, req.path, (), f"cannot read the file ({e.strerror})."))
            return
        if kind not in ("dicom", "dicom-raw"):
            self._no_tags(req, kind or "")
            return
        try:
            from engine.io.dicom import dicom_tags

            rows = tuple(dicom_tags(req.path))
        except Exception as e:  # noqa: BLE001
            self.tagsReady.emit(TagsReady(req.generation, req.path, (), describe_error(e)))
            return
        self.tagsReady.emit(TagsReady(req.generation, req.path, rows, ""))


class StudyWorker(QObject):
    """Thumbnails and predictions for the study browser, one file at a time, yielding to
    the interactive analysis (waits while it runs) and stopping when the study changes."""

    itemDone = Signal(object)
    finished = Signal(int)

    def __init__(self, generation: Generation, busy: Busy, decoder: Decoder) -> None:
        super().__init__()
        self._gen = generation
        self._idle = busy.idle
        self._decoder = decoder

    @Slot()
    def lower_priority(self) -> None:
        background_priority()

    @Slot(object)
    def process(self, req: StudyRequest) -> None:
        for i in req.indices:
            while not self._idle.wait(0.1):
                if req.generation != self._gen.value:
                    return
            if req.generation != self._gen.value:
                return
            if os.path.abspath(req.paths[i]) in req.skip:
                continue
            self.itemDone.emit(self._one(req, i))
        self.finished.emit(req.generation)

    def _one(self, req: StudyRequest, i: int) -> StudyItem:
        path = req.paths[i]
        try:
            image = self._decoder.load(path)
            thumb = thumbnail(image.pixels)
        except Exception as e:  # noqa: BLE001
            return StudyItem(req.generation, i, path, "error", message=describe_error(e))
        clf = req.classifier
        if clf is None:
            return StudyItem(req.generation, i, path, "loaded", thumb)
        try:
            pred = classify(image, clf)  # the engine's per-image job, as everywhere
        except Exception as e:  # noqa: BLE001
            return StudyItem(req.generation, i, path, "error", thumb, message=describe_error(e))
        return StudyItem(req.generation, i, path, "analysed", thumb, pred.call, pred.top_prob,
                         tuple(float(p) for p in pred.probs), flags=pred.flags,
                         scope=pred.scope.label, scope_reason=pred.scope.reason)


class AnalysisService(QObject):
    """Owns the worker threads; the GUI-side face of the workers."""

    imageReady = Signal(object)
    analysed = Signal(object)
    tagsReady = Signal(object)
    failed = Signal(object)
    modelReady = Signal(object)
    studyItem = Signal(object)
    studyFinished = Signal(int)

    _open = Signal(object)
    _load = Signal(object)
    _study = Signal(object)

    def __init__(self, parent: QObject | None = None, decoder: Decoder | None = None) -> None:
        super().__init__(parent)
        self.decoder = decoder or shared_decoder()
        self.generation = Generation()
        self.model_generation = Generation()
        self.study_generation = Generation()
        self.dropped = 0  # stale results dropped (for tests and the log)
        self.busy = Busy()
        self._threads: list[QThread] = []
        self._worker = AnalysisWorker(self.generation, self.model_generation, self.busy, self.decoder)
        self._study_worker = StudyWorker(self.study_generation, self.busy, self.decoder)
        for name, w in (("radlens-analysis", self._worker), ("radlens-study", self._study_worker)):
            t = QThread(self)
            t.setObjectName(name)
            w.moveToThread(t)
            t.started.connect(w.lower_priority)
            t.start()
            self._threads.append(t)
        self._open.connect(self._worker.open)
        self._load.connect(self._worker.load_model)
        self._study.connect(self._study_worker.process)
        # bound methods of this GUI-thread object, so the connections are queued to the GUI
        # thread (a plain closure would run in the emitting worker thread)
        self._worker.imageReady.connect(self._on_image)
        self._worker.analysed.connect(self._on_analysed)
        self._worker.tagsReady.connect(self._on_tags)
        self._worker.failed.connect(self._on_failed)
        self._worker.modelReady.connect(self._on_model)
        self._study_worker.itemDone.connect(self._on_study_item)
        self._study_worker.finished.connect(self._on_study_finished)
        self._model_loading = False
        self._deferred: OpenRequest | None = None  # an open asked for while the model loads

    def _fresh(self, result: object) -> bool:
        if getattr(result, "generation", None) != self.generation.value:
            self.dropped += 1
            log.debug("dropped a stale %s", type(result).__name__)
            return False
        return True

    @Slot(object)
    def _on_image(self, r: ImageReady) -> None:
        if self._fresh(r):
            self.imageReady.emit(r)

    @Slot(object)
    def _on_analysed(self, r: AnalysisDone) -> None:
        if self._fresh(r):
            self.analysed.emit(r)

    @Slot(object)
    def _on_tags(self, r: TagsReady) -> None:
        if self._fresh(r):
            self.tagsReady.emit(r)

    @Slot(object)
    def _on_failed(self, r: Failure) -> None:
        if self._fresh(r):
            self.failed.emit(r)

    # -- requests (GUI thread) ---------------------------------------------------------
    def open(self, path: str, classifier: Classifier | None, want_tags: bool = True) -> int:
        """Open (and analyse) ``path``. While a model loads, the worker is busy with it: the
        file is decoded meanwhile and the request waits, so it runs once, with the model
        (the window opens the file again once the model is there; a refused model releases it)."""
        gen = self.generation.next()
        req = OpenRequest(gen, path, classifier, want_tags)
        if self._model_loading:
            self.decoder.prefetch(path)
            self._deferred = req
            return gen
        self._deferred = None
        self._send(req)
        return gen

    def _send(self, req: OpenRequest) -> None:
        self.busy.begin()  # before the study worker can pick its next file
        self._open.emit(req)

    def cancel_current(self) -> None:
        self.generation.next()

    def load_model(self, path: str, device: str) -> int:
        gen = self.model_generation.next()
        self._model_loading = True
        self._load.emit(ModelRequest(gen, path, device))
        return gen

    def study(self, paths: list[str], classifier: Classifier | None, indices: tuple[int, ...] = (),
              skip: set[str] | frozenset[str] = frozenset()) -> int:
        """Process ``indices`` of ``paths`` in the background (none: just stop the current study)."""
        gen = self.study_generation.next()
        if paths and indices:
            self._study.emit(StudyRequest(gen, tuple(paths), classifier, tuple(indices), skip))
        return gen

    # -- results -------------------------------------------------------------------------
    @Slot(object)
    def _on_model(self, r: ModelReady) -> None:
        if r.generation == self.model_generation.value:
            self._model_loading = False
            # the DICOM decoding process starts in the background once the model is in, not on the first
            # file (at once if the command line named a DICOM: desktop.app, or a file came meanwhile: prefetch)
            QTimer.singleShot(WARM_AFTER_MODEL_MS, self.decoder.warm_async)
            self.modelReady.emit(r)  # the window opens its current file again, with the model
            req, self._deferred = self._deferred, None
            if req is not None and req.generation == self.generation.value:  # nobody did: open it as asked
                self._send(req)

    @Slot(object)
    def _on_study_item(self, item: StudyItem) -> None:
        if item.generation == self.study_generation.value:
            self.studyItem.emit(item)

    @Slot(int)
    def _on_study_finished(self, gen: int) -> None:
        if gen == self.study_generation.value:
            self.studyFinished.emit(gen)

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop the threads (called when the window closes)."""
        self.generation.next()
        self.study_generation.next()
        self.model_generation.next()
        self.busy.reset()
        for t in self._threads:
            t.quit()
        for t in self._threads:
            if not t.wait(timeout_ms):
                log.warning("worker thread %s did not stop in time", t.objectName())
        self._threads.clear()
