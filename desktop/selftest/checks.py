"""The checks of ``RadLens --self-test`` (``desktop.selftest`` runs them and reports): the
bundled model and its execution provider, the golden radiograph's probabilities and Grad-CAM
heatmap against ``expected.json``, compressed DICOM decoding (in this process and in a spawned
one), Qt offscreen and its platform plugins, and the main window module. Each check returns
a one-line detail or raises (``_Failure`` for a wrong result)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

PROB_ATOL = 1e-3  # CPU and GPU numerics differ slightly
HEAT_MEAN_ATOL = 0.02
HEAT_CENTROID_ATOL = 0.03  # fraction of the image size
HEAT_PEAK_MIN = 0.9  # heatmap value at the stored peak location
DICOM_MEAN_ATOL = 1e-3
DICOM_FILES = ("JPEG2000.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm")
GOLDEN_IMAGE = "golden.png"


def golden_dir() -> Path:
    from engine.resources import resource_dir

    return resource_dir() / "golden"


class _Failure(AssertionError):  # the report names it: "FAIL <check>: _Failure: <why>"
    pass


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise _Failure(msg)


# ---------------------------------------------------------------------------------------
# Measurements shared by --write-expected and the checks


def heatmap_stats(heat: np.ndarray) -> dict:
    h, w = heat.shape
    total = float(heat.sum())
    ys, xs = np.mgrid[0:h, 0:w]
    cy = float((heat * ys).sum() / total / h) if total > 0 else 0.5
    cx = float((heat * xs).sum() / total / w) if total > 0 else 0.5
    py, px = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return {"shape": [h, w], "mean": float(heat.mean()), "centroid": [cy, cx],
            "peak": [float(py) / h, float(px) / w], "max": float(heat.max()), "min": float(heat.min())}


def dicom_stats(path: Path) -> dict:
    from pydicom.pixels import get_decoder

    from engine.io import load_image

    img = load_image(path)
    decoder = get_decoder(img.meta.transfer_syntax)
    return {"file": path.name, "transfer_syntax": img.meta.transfer_syntax,
            "transfer_syntax_name": img.meta.transfer_syntax_name, "shape": list(img.shape),
            "mean": float(img.pixels.mean()), "plugins": list(decoder.available_plugins)}

# ---------------------------------------------------------------------------------------
# The model and the golden files


class GoldenChecks:
    """The checks that build on each other: expected.json, the model, its provider, the
    golden probabilities and heatmap, and one check per DICOM file listed in expected.json."""

    def __init__(self, model: str | None, device: str, expected: Path, gdir: Path) -> None:
        self.model = model
        self.device = device
        self.expected = expected
        self.gdir = gdir
        self.exp: dict | None = None  # expected.json, once read
        self.clf = None  # the Classifier, once loaded
        self.pred = None  # the golden radiograph's Prediction, once analysed

    def load_expected(self) -> str:
        self.exp = json.loads(self.expected.read_text(encoding="utf-8"))
        return str(self.expected)

    def load_model(self) -> str:
        from engine.ai.model import Classifier, default_model_path

        path = Path(self.model) if self.model else default_model_path()
        clf = Classifier(path, device=self.device)
        self.clf = clf
        card = clf.card
        exp = self.exp
        if exp:
            want = exp["model"]["model_sha256"]
            _require(clf.sha256 == want, f"{path.name} has SHA-256 {clf.sha256[:16]}..., expected.json was made for "
                     f"{want[:16]}... ({exp['model']['model_name']} {exp['model']['model_version']}). "
                     "Regenerate it with: python -m desktop.selftest --write-expected")
        return f"{card.name} {card.version} ({len(card.labels)} classes) sha256 {clf.sha256[:16]}... from {path}"

    def provider(self) -> str:
        clf = self.clf
        import onnxruntime as ort

        note = f"; fallback: {clf.provider_note}" if clf.provider_note else ""
        return (f"{clf.provider} = {clf.device_label} (onnxruntime {ort.__version__}, "
                f"available {ort.get_available_providers()}){note}")

    def golden_probs(self) -> str:
        from engine.ai.analyze import analyze

        exp = self.exp["golden"]
        pred = analyze(self.gdir / exp["file"], self.clf)
        self.pred = pred
        want = np.array([exp["probs"][lab] for lab in pred.labels], np.float64)
        diff = float(np.abs(pred.probs.astype(np.float64) - want).max())
        tol = float(exp.get("prob_atol", PROB_ATOL))
        got = ", ".join(f"{lab} {p:.4f}" for lab, p in pred.ranked())
        _require(diff <= tol, f"max |p - expected| = {diff:.2e} > {tol:g} (got {got})")
        _require(pred.top_label == exp["label"], f"top label {pred.top_label!r}, expected {exp['label']!r}")
        return f"{got}; max |diff| {diff:.1e} <= {tol:g}; label {pred.top_label}"

    def golden_heatmap(self) -> str:
        pred, exp = self.pred, self.exp["golden"]["heatmap"]
        heat = pred.heatmap()
        _require(heat.shape == pred.image.shape, f"heatmap {heat.shape} != image {pred.image.shape}")
        _require(heat.dtype == np.float32 and bool(np.isfinite(heat).all()), "heatmap is not finite float32")
        _require(float(heat.min()) >= 0.0 and float(heat.max()) <= 1.0, f"heatmap outside [0, 1]: "
                 f"[{heat.min():.3f}, {heat.max():.3f}]")
        st = heatmap_stats(heat)
        dmean = abs(st["mean"] - exp["mean"])
        _require(dmean <= exp.get("mean_atol", HEAT_MEAN_ATOL), f"mean {st['mean']:.4f} vs {exp['mean']:.4f}")
        dcen = max(abs(a - b) for a, b in zip(st["centroid"], exp["centroid"], strict=True))
        _require(dcen <= exp.get("centroid_atol", HEAT_CENTROID_ATOL),
                 f"centroid {st['centroid']} vs {exp['centroid']} (fraction of image)")
        h, w = heat.shape
        py = min(h - 1, int(round(exp["peak"][0] * h)))
        px = min(w - 1, int(round(exp["peak"][1] * w)))
        at_peak = float(heat[py, px])
        _require(at_peak >= exp.get("peak_min_value", HEAT_PEAK_MIN),
                 f"heatmap is {at_peak:.3f} at the expected peak ({py}, {px})")
        for c in range(len(pred.labels)):  # every class gives a valid map
            m = pred.heatmap(c)
            _require(m.shape == heat.shape and float(m.min()) >= 0 and float(m.max()) <= 1, f"class {c} heatmap invalid")
        return (f"{h}x{w} in [0, 1], mean {st['mean']:.3f} (|d| {dmean:.1e}), centroid |d| {dcen:.1e}, "
                f"{at_peak:.2f} at the expected peak")

    def dicom_items(self) -> list[dict]:
        """The DICOM files expected.json lists (none when it could not be read)."""
        return (self.exp or {}).get("dicom", [])

    def dicom(self, item: dict) -> str:
        st = dicom_stats(self.gdir / item["file"])
        _require(st["shape"] == item["shape"], f"shape {st['shape']} != {item['shape']}")
        _require(abs(st["mean"] - item["mean"]) <= item.get("mean_atol", DICOM_MEAN_ATOL),
                 f"mean {st['mean']:.5f} != {item['mean']:.5f}")
        _require("pylibjpeg" in st["plugins"], f"the pylibjpeg decoder plugin for {st['transfer_syntax_name']} "
                 f"is missing (available: {st['plugins']})")
        return f"{st['transfer_syntax_name']}, {st['shape'][1]}x{st['shape'][0]}, decoders {st['plugins']}"


    def dicom_jpeg12(self) -> str:
        """The second JPEG decoder (engine.io.dicom_jpeg: imagecodecs, for the 12-bit and progressive
        JPEG pydicom's plugins refuse) is in the bundle: the golden radiograph as 12-bit JPEG
        Extended, in an in-memory data set, decoded by it."""
        import cv2
        import imagecodecs
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.encaps import encapsulate

        from engine.io.dicom_jpeg import decode_first_frame

        src = cv2.imread(str(self.gdir / GOLDEN_IMAGE), cv2.IMREAD_GRAYSCALE).astype(np.uint16) * 16  # 12-bit
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.51"
        ds.Rows, ds.Columns = src.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = encapsulate([imagecodecs.jpeg8_encode(src, level=95, bitspersample=12)])
        arr, _ = decode_first_frame(Path("selftest.dcm"), ds, 1, *src.shape)
        diff = int(np.abs(arr.astype(np.int32) - src.astype(np.int32)).max())
        _require(arr.shape == src.shape and diff <= 64, f"decoded {arr.shape}, max |diff| {diff} of 4095")
        return f"{imagecodecs.jpeg8_version()}: 12-bit JPEG {src.shape[1]}x{src.shape[0]}, max |diff| {diff} of 4095"

    def dicom_results(self) -> str:
        """DICOM results and PACS: highdicom writes the SR and the heatmap Secondary Capture for a
        golden DICOM (read back with pydicom), and the DICOMweb (dicomweb-client) and C-STORE
        (pynetdicom) modules import: a frozen app that lacks one of them fails here, not at a user's PACS."""
        import tempfile

        import pydicom

        from engine.ai.pipeline import classify
        from engine.io import load_image
        from engine.pacs.dicomweb import PacsClient  # noqa: F401 - the import is the check
        from engine.pacs.receiver import StoreReceiver  # noqa: F401
        from engine.results.dicom_results import results_for, write_results

        _require(self.clf is not None, "no model")
        items = self.dicom_items()
        _require(bool(items), "expected.json lists no DICOM file")
        image = load_image(self.gdir / items[0]["file"])
        datasets = results_for(image, classify(image, self.clf), self.clf)
        with tempfile.TemporaryDirectory() as tmp:
            paths = write_results(datasets, Path(tmp))
            back = [pydicom.dcmread(p) for p in paths]
        mods = sorted(str(d.Modality) for d in back)
        _require(len(back) == 2 and "SR" in mods, f"wrote {mods}, not an SR and a secondary capture")
        sr = next(d for d in back if d.Modality == "SR")
        _require(sr.VerificationFlag == "UNVERIFIED", f"SR VerificationFlag {sr.VerificationFlag}")
        return f"SR + secondary capture for {items[0]['file']} ({', '.join(mods)}), read back"


# ---------------------------------------------------------------------------------------
# The viewer's own machinery: decoding processes, Qt, the main window


def decoder_process_check() -> str:
    """The viewer decodes DICOM in spawned processes (desktop.core.decoder): in a frozen app that
    only works when the executable handles multiprocessing's child start-up."""
    import importlib

    try:
        decoder_mod = importlib.import_module("desktop.core.decoder")
    except ModuleNotFoundError as e:
        if e.name in ("desktop.core", "desktop.core.decoder"):
            return "desktop.core.decoder not present (skipped)"
        raise
    from engine.io import load_image

    path = golden_dir() / DICOM_FILES[0]
    dec = decoder_mod.Decoder(workers=1)
    try:
        t0 = time.perf_counter()
        img = dec.load(str(path))
        dt = time.perf_counter() - t0
        _require(dec.use_processes and getattr(dec, "_worked", True),
                 "the decoding process pool could not start; the viewer falls back to decoding in threads")
    finally:
        dec.shutdown()
    ref = load_image(path)
    _require(img.shape == ref.shape and bool(np.array_equal(img.pixels, ref.pixels)),
             "the child process decoded different pixels")
    return f"{path.name} decoded in a spawned process ({dt:.2f} s including the process start), same pixels"


def _app():
    from ..qtapp import make_app

    return make_app([])


def qt_check(pred) -> str:  # noqa: ANN001 - a Prediction or None
    from PySide6.QtWidgets import QLabel

    from engine.ai.cam import overlay

    from ..viewer.convert import gray_qimage, rgb_qimage

    app = _app()
    if pred is not None:
        gray = np.clip(pred.image.pixels * 255.0 + 0.5, 0, 255).astype(np.uint8)
        rgb = overlay(pred.image.pixels, pred.heatmap(), 0.5)
    else:  # model failed: still prove Qt works
        gray = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(48, 64)
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
    h, w = gray.shape
    qi = gray_qimage(gray)
    _require(qi.width() == w and qi.height() == h, f"QImage {qi.width()}x{qi.height()} != {w}x{h}")
    for y, x in ((0, 0), (h // 2, w // 3), (h - 1, w - 1)):
        _require(qi.pixelColor(x, y).red() == int(gray[y, x]), f"gray QImage pixel ({y}, {x}) differs")
    qo = rgb_qimage(rgb)
    c = qo.pixelColor(w // 2, h // 2)
    _require((c.red(), c.green(), c.blue()) == tuple(int(v) for v in rgb[h // 2, w // 2]), "overlay QImage differs")
    from PySide6.QtGui import QPixmap

    label = QLabel()
    label.setPixmap(QPixmap.fromImage(qo))
    label.resize(w, h)
    label.show()
    app.processEvents()
    _require(label.isVisible(), "widget did not become visible")
    grabbed = label.grab().toImage()
    _require(grabbed.width() == w, f"grabbed widget is {grabbed.width()} px wide, expected {w}")
    label.close()
    return f"QApplication on platform '{app.platformName()}', {w}x{h} QImage round trip, widget shown and grabbed"


def qt_plugins() -> str:
    from PySide6.QtCore import QLibraryInfo

    pdir = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    names = sorted(p.name for p in pdir.glob("*") if p.is_file())
    want = {"linux": ("offscreen", "xcb"), "win32": ("offscreen", "windows"), "darwin": ("offscreen", "cocoa")}
    need = want.get(sys.platform, ("offscreen",))
    missing = [n for n in need if not any(n in f for f in names)]
    _require(not missing, f"platform plugin(s) {missing} missing from {pdir} (found {names})")
    return f"{', '.join(names)} in {pdir}"


def main_window_import() -> str:
    import importlib

    try:
        importlib.import_module("desktop.main_window")
    except ModuleNotFoundError as e:
        if e.name == "desktop.main_window":
            return "desktop.main_window not present (skipped)"
        raise
    return "desktop.main_window imports"


def site_adaptation_check(clf) -> str:  # noqa: ANN001 - engine.Classifier
    """What Analysis > Adapt to this site… needs: the onnx package (it writes the adapted graph), the
    model's head and its reference set, checked against the backbone."""
    from engine.adapt.export import base_head
    from engine.adapt.reference import load_reference

    if not clf.has_features:
        return f"{clf.card.name} has no 'features' output: site adaptation unavailable for it (skipped)"
    head = base_head(clf.path)
    ref = load_reference(clf)
    _require(head.weight.shape == (len(clf.labels), ref.features.shape[1]), "head and reference set disagree")
    return f"head {head.weight.shape[0]}x{head.weight.shape[1]}, reference set {len(ref.label)} rows (onnx package present)"

