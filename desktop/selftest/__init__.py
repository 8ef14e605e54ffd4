"""``RadLens --self-test`` and ``python -m desktop.selftest [--write-expected]``: the runner and
command line are in ``run``, the checks in ``checks``."""

from .run import DICOM_FILES, main, run_self_test, startup_time, write_expected

__all__ = ["DICOM_FILES", "main", "run_self_test", "startup_time", "write_expected"]
