"""The typed errors of site adaptation: each says what happened and what to do next."""

from __future__ import annotations

from ..errors import RadLensError


class AdaptError(RadLensError):
    """Site adaptation cannot run on this input (too few films, bad options, no reference set)."""
