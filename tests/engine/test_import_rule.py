"""The layout rule: engine imports neither Qt, torch, desktop nor training."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "torch", "torchvision", "desktop", "training")


def test_import_engine_pulls_in_no_qt_or_torch() -> None:
    code = (
        "import json, sys\n"
        "import engine, engine.batch, engine.batch.report, engine.batch.cli, engine.io.dicom, engine.ai.cam, engine.ai.analyze\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


def test_engine_sources_never_name_forbidden_packages() -> None:
    offenders = []
    for path in sorted((REPO / "engine").rglob("*.py")):  # the subpackages too
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO).as_posix()}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
    assert len(list((REPO / "engine").rglob("*.py"))) >= 10  # the scan really saw the package
