"""``python -m engine``: the batch command line (``radlens-batch``)."""

from .batch.cli import main

raise SystemExit(main())
