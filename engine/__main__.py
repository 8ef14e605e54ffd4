"""``python -m engine``: the batch command line (``radlens-batch``)."""

from .cli import main

raise SystemExit(main())
