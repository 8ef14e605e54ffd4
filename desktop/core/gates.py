"""Small thread-safe gates between the GUI and its worker threads: ``Busy`` counts the
interactive requests in flight, ``Generation`` makes stale requests and results known."""

from __future__ import annotations

import threading


class Busy:
    """Counts interactive requests in flight; ``idle`` is set when there are none. The
    study worker waits on it, so the image the user asked for is never queued behind
    background thumbnails."""

    def __init__(self) -> None:
        self.idle = threading.Event()
        self.idle.set()
        self._n = 0
        self._lock = threading.Lock()

    def begin(self) -> None:
        with self._lock:
            self._n += 1
            self.idle.clear()

    def end(self) -> None:
        with self._lock:
            self._n = max(0, self._n - 1)
            if self._n == 0:
                self.idle.set()

    def reset(self) -> None:
        with self._lock:
            self._n = 0
            self.idle.set()


class Generation:
    """A counter the GUI bumps and workers read (an int read is atomic under the GIL)."""

    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value
