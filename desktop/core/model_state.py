"""Where the viewer's model stands: loading, ready, refused, or none at all."""

from __future__ import annotations

from enum import Enum


class ModelState(Enum):
    LOADING = "loading"  # a model file is being loaded (a previous model may still be in use)
    READY = "ready"  # a classifier is in use: analysis is on
    FAILED = "failed"  # the model was refused and none is in use: analysis is off
    NONE = "none"  # no model file to load: analysis is off

    @property
    def settled(self) -> bool:
        """No load is in flight: the model (or its absence) is final for now."""
        return self is not ModelState.LOADING
