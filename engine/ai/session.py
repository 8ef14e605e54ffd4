"""An onnxruntime session on the device asked for (CUDA when it works, else the CPU with a note
saying why), and a file's SHA-256. Shared by the classifier (``engine.ai.model``) and the lung model
(``engine.ai.lungs``); imports neither, so they do not import each other."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from ..errors import ModelError

log = logging.getLogger("engine.ai.model")

DEVICES = ("auto", "cpu", "cuda")


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _model_source(path: Path) -> str | bytes:
    """What onnxruntime is given: the path, or the file's bytes when the path is not valid
    UTF-8 (onnxruntime refuses such a str, and the model was then 'not loadable')."""
    text = str(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return path.read_bytes()


def _not_loadable(path: Path, exc: Exception) -> ModelError:
    first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
    return ModelError(f"{path.name} is not a loadable ONNX model ({first}). Choose a RadLens .onnx model file.")


def open_session(path: Path, device: str, threads: int = 0, spinning: bool = True):  # noqa: ANN201 - (session, note)
    """An onnxruntime session on CUDA when asked for (or "auto") and it works, else on the CPU,
    with a note saying why the CPU is used ("" when nothing fell back). Shared by the classifier
    and the lung model. ``spinning=False`` turns off spin-waiting between ops."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # our own fallback note replaces ORT's CUDA load errors and warnings
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # our own fallback note replaces onnxruntime's warnings
    note = ""
    if device in ("auto", "cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            note = "CUDA is not available in this onnxruntime build; using the CPU."
        else:
            sess = None
            try:
                sess = ort.InferenceSession(_model_source(path), opts, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
                if "cuda" not in str(e).lower():
                    raise _not_loadable(path, e) from None
                note = f"CUDA failed to start ({str(e).splitlines()[0]}); using the CPU."
            if sess is not None and sess.get_providers()[0] == "CUDAExecutionProvider":
                return sess, ""
            if sess is not None:
                note = ("CUDA libraries (CUDA runtime/cuDNN) could not be loaded; "
                        f"using the CPU. onnxruntime {ort.__version__} needs the CUDA and cuDNN versions listed "
                        "in the README to use the GPU.")
        if device == "cuda":
            log.warning("CUDA was requested: %s", note)
    try:
        return ort.InferenceSession(_model_source(path), opts, providers=["CPUExecutionProvider"]), note
    except Exception as e:  # noqa: BLE001
        raise _not_loadable(path, e) from None
