"""Many files: the batch generator (``analyze_folder``: one ``BatchRow`` per file, in file order),
``radlens-batch`` (``engine.batch.cli``), the CSV and JSON report, the journal, Parquet
partitions, DICOM results per row and the Dask cluster. The top of the engine: it may import
``engine.results``, ``engine.pacs``, ``engine.ai`` and ``engine.io``; nothing of the engine
imports it."""

from ..ai.jobs import Cancel, default_workers
from ..io.fileio import printable
from ..io.listing import SKIPPED_NAMES, FolderError, list_folder, list_images
from .generator import OUT_OF_SCOPE, BatchJob, BatchRow, Progress, analyze_files, analyze_folder

__all__ = [
    "OUT_OF_SCOPE", "SKIPPED_NAMES", "BatchJob", "BatchRow", "Cancel", "FolderError", "Progress", "analyze_files",
    "analyze_folder", "default_workers", "list_folder", "list_images", "printable",
]
