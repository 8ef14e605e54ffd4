"""Extra sources kept outside the pool (``EXTRA``) and the pool's own image format, which their
films are put through so that they look like every pool film (a JPEG quality-88 round trip).
Imported by ``data`` (loading) and ``extra_sources`` (the samples); imports neither."""

from __future__ import annotations

import io

import numpy as np

POOL_FORMAT_QUALITY = 88
EXTRA = {
    "jsrt-nonodule": {"data": "../lungseg", "label": "normal", "case_prefix": "JPCNN", "source": "jsrt-scr",
                      "licence": "JSRT (Japanese Society of Radiological Technology): research and education "
                                 "only; not for a model sold or shipped commercially without clearing it"},
}


def is_extra(sample) -> bool:  # noqa: ANN001 - a training.data.data.Sample
    return sample.source in EXTRA


def pool_format(u8: np.ndarray) -> np.ndarray:
    """An 8-bit gray image at model size through a JPEG quality-88 round trip (the pool's format)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(u8, "L").save(buf, "JPEG", quality=POOL_FORMAT_QUALITY)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"), np.uint8)
