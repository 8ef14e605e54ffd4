"""The README's two fresh-machine commands: CI runs the test command verbatim, and torch comes from
PyTorch's CPU-only wheel index (issue 24 item 9), never PyPI's multi-GB CUDA build."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, re.S)


def test_two_commands_and_ci_runs_the_test_command_verbatim() -> None:
    launch, tests = _commands()
    assert launch.endswith(".venv/bin/radlens") and tests.endswith(".venv/bin/python -m pytest")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert f"( {tests} )" in ci
    assert "export PIP_RETRIES=0" in ci.split(tests, 1)[0]  # no minute of retries for the unreachable index


def test_torch_from_the_cpu_only_index() -> None:
    _, tests = _commands()
    install = next(part for part in tests.split("&&") if "install torch" in part)
    assert re.search(r"torch==\d+\.\d+\.\d+ --index-url https://download\.pytorch\.org/whl/cpu\s*$", install), install
    assert tests.index("install torch") < tests.index('install -e ".[gui,train,test]"')  # before the train extra
