"""Site adaptation (DESIGN.md): refit a base model's linear head on a site's confirmed films together
with the base model's own training features, and write a NEW model whose card names its parent.

Numpy only: ``site`` reads the site folder through the engine's per-image path, ``reference`` loads
the base model's training features, ``head`` and ``fit`` fit the head, temperature and operating
points with their cross-validated and reference figures, ``export`` writes the adapted ONNX, ``run``
chains them (``adapt_site``) and ``cli`` is ``radlens-adapt``.
"""

from .errors import AdaptError
from .fit import AdaptOptions
from .run import MIN_FILMS, MIN_PER_CLASS, AdaptResult, Cancelled, adapt_site

__all__ = ["MIN_FILMS", "MIN_PER_CLASS", "AdaptError", "AdaptOptions", "AdaptResult", "Cancelled", "adapt_site"]
