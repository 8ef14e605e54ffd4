"""Fixtures for the Qt-free desktop core (desktop.core): no Qt, no pytest-qt, so these
tests run where PySide6 is not installed."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest


@pytest.fixture
def png_path(tmp_path: Path, cxr_samples: dict[str, list[Path]]) -> Path:
    """A PNG written from a real chest radiograph JPEG."""
    src = cxr_samples["pneumonia"][0]
    img = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)
    out = tmp_path / "chest.png"
    assert cv2.imwrite(str(out), img)
    return out
