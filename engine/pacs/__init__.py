"""RadLens and the hospital network (no Qt): DICOMweb search, retrieve and store
(``dicomweb``), PACS server settings (``servers``) and their secrets (``credentials``), a DIMSE
C-STORE receiver (``receiver``) and the local study cache (``cache``).

Research use only, not for diagnosis.
"""

from .errors import PACS_ERROR_KINDS, PacsError
from .servers import ServerConfig, default_cache_dir, default_servers_path, load_servers, save_servers

__all__ = ["PACS_ERROR_KINDS", "PacsError", "ServerConfig", "default_cache_dir", "default_servers_path",
           "load_servers", "save_servers"]
