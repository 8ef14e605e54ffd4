"""dicom3tools' ``dciodvfy`` on one file, for the tests of the DICOM objects RadLens writes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(error lines, warning lines) of dicom3tools' validator on one file."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        why = "dciodvfy (dicom3tools) is not installed: apt-get install dicom3tools"
        if os.environ.get("RADLENS_REQUIRE_PACS") == "1":  # CI installs it: a skip there would hide a gap
            pytest.fail(f"RADLENS_REQUIRE_PACS=1 but {why}")
        pytest.skip(why)
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    lines = (out.stdout + out.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")]
