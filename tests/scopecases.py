"""Generated out-of-scope cases for the scope check (tests and bench/scope_thresholds.py):
blank and uniform images, noise, gradients, colour and grey photographs (scikit-image's
bundled pictures), and a drawn "screenshot" (flat panels, text, a radiograph inside).

Each case is written as a real PNG so it goes through the same loader as a user's file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

Maker = Callable[[np.random.Generator], np.ndarray]


def _gray(v: int, h: int = 512, w: int = 512) -> np.ndarray:
    return np.full((h, w), v, np.uint8)


def _gradient(kind: str) -> np.ndarray:
    y, x = np.mgrid[0:512, 0:512].astype(np.float32) / 511.0
    g = {"horizontal": x, "vertical": y, "radial": np.clip(np.hypot(x - 0.5, y - 0.5) * 1.4, 0, 1),
         "diagonal": (x + y) / 2}[kind]
    return (g * 255).astype(np.uint8)


def _photo(name: str) -> Maker:
    def make(_: np.random.Generator) -> np.ndarray:
        import skimage.data

        im = getattr(skimage.data, name)()
        if im.dtype == bool:
            im = im.astype(np.uint8) * 255
        if im.ndim == 3:
            im = cv2.cvtColor(im[:, :, :3], cv2.COLOR_RGB2BGR)
        return im

    return make


def screenshot(radiograph: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """A drawn viewer window: title bar, side panels with text and coloured bars, a radiograph."""
    h, w = 800, 1280
    img = np.full((h, w, 3), (53, 53, 53), np.uint8)
    img[:32] = (230, 230, 230)
    cv2.putText(img, "RadLens - chest.png", (12, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1)
    img[32:, 960:] = (240, 240, 240)
    for i, (lab, col) in enumerate([("normal", (80, 160, 80)), ("covid", (60, 60, 200)), ("pneumonia", (200, 120, 40)),
                                    ("tuberculosis", (40, 160, 200))]):
        y = 80 + 60 * i
        cv2.putText(img, lab, (980, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
        cv2.rectangle(img, (980, y + 10), (980 + int(rng.uniform(20, 260)), y + 28), col, -1)
    cv2.putText(img, "Research use only, not for diagnosis", (980, 760), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 160), 1)
    if radiograph is not None:
        r = cv2.resize(radiograph, (640, 640), interpolation=cv2.INTER_AREA)
        img[100:740, 180:820] = r[:, :, None] if r.ndim == 2 else r
    return img


def cases(radiograph: np.ndarray | None = None) -> dict[str, Maker]:
    """name -> maker(rng) of an image (uint8, grey or BGR). ``radiograph`` (grey uint8) is put
    inside the screenshot cases when given."""
    out: dict[str, Maker] = {
        "blank-black": lambda r: _gray(0),
        "blank-white": lambda r: _gray(255),
        "uniform-grey": lambda r: _gray(128),
        "uniform-grey-small-noise": lambda r: np.clip(128 + r.normal(0, 1.5, (512, 512)), 0, 255).astype(np.uint8),
        "noise-uniform": lambda r: r.integers(0, 256, (512, 512), dtype=np.uint8),
        "noise-gaussian": lambda r: np.clip(128 + r.normal(0, 40, (512, 512)), 0, 255).astype(np.uint8),
        "noise-colour": lambda r: r.integers(0, 256, (512, 512, 3), dtype=np.uint8),
        "gradient-horizontal": lambda r: _gradient("horizontal"),
        "gradient-vertical": lambda r: _gradient("vertical"),
        "gradient-radial": lambda r: _gradient("radial"),
        "gradient-diagonal": lambda r: _gradient("diagonal"),
        "screenshot": lambda r: screenshot(radiograph, r),
        "screenshot-empty": lambda r: screenshot(None, r),
    }
    for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                 "colorwheel", "logo"):
        out[f"colour-photo-{name}"] = _photo(name)
    return out


GREY_PHOTOS = ("camera", "moon", "brick", "grass", "gravel", "clock", "coins", "cell", "text", "page", "checkerboard")


def grey_photo_cases() -> dict[str, Maker]:
    """Grey photographs and textures: not in the issue's 100% list, reported beside it."""
    return {f"grey-photo-{n}": _photo(n) for n in GREY_PHOTOS}


def write_cases(folder: Path, makers: dict[str, Maker], seed: int = 0) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = {}
    for name, make in makers.items():
        p = folder / f"{name}.png"
        assert cv2.imwrite(str(p), make(rng)), name
        paths[name] = p
    return paths
