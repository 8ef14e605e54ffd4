"""Entry script of the frozen app (build.spec): ``RadLens [--self-test | --startup-time | PATH ...]``.

Lets spawned child processes run without importing Qt, records the launch time for ``--startup-time`` where the OS cannot tell it (not Linux),
then runs ``desktop.app.main`` (which first checks, on Linux, that the system libraries Qt needs are installed,
naming the packages if not, and that there is a display, before any PySide6 import). Absolute imports: PyInstaller
runs this file as a script.
"""

import multiprocessing
import os
import sys
import time

os.environ.setdefault("RADLENS_T0", repr(time.time()))

if __name__ == "__main__":
    # A spawned DICOM-decoding child (desktop.core.decoder) runs here and exits, before Qt is imported.
    multiprocessing.freeze_support()
    from desktop.app import main

    sys.exit(main())
