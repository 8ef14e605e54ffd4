"""The one error type of the PACS code. ``kind`` says what went wrong, the message what to do."""

from __future__ import annotations

from typing import Literal

from ..errors import RadLensError

PacsErrorKind = Literal["unreachable", "timeout", "unauthorized", "forbidden", "not_found", "malformed", "partial",
                        "cancelled", "server", "invalid", "too_large"]

#: every ``PacsError.kind``, with what it means
PACS_ERROR_KINDS: dict[str, str] = {
    "unreachable": "no connection: server down, wrong host or port, DNS or TLS failure",
    "timeout": "the server accepted the connection but did not answer in time",
    "unauthorized": "HTTP 401: no or wrong user name, password or token",
    "forbidden": "HTTP 403: the account may not do this",
    "not_found": "HTTP 404, or a search found nothing: unknown study or series, or a wrong DICOMweb path",
    "malformed": "the answer is not valid DICOMweb (bad JSON, bad multipart, unreadable DICOM)",
    "partial": "the transfer stopped part-way; what was fetched is kept and listed",
    "cancelled": "the user cancelled part-way; what was fetched is kept and listed",
    "server": "the server answered with another error (HTTP 4xx/5xx)",
    "invalid": "bad input on our side (a URL, a UID, a setting) before anything was sent",
    "too_large": "an answer (one instance, or a search or store answer) is larger than the ceiling RadLens reads",
}


class PacsError(RadLensError):
    """A PACS operation failed. ``kind`` is one of ``PACS_ERROR_KINDS``; ``status`` the HTTP status
    when there was one; ``result`` the ``RetrieveResult`` of what was fetched before a partial or
    cancelled retrieve (``complete`` is False), else None."""

    def __init__(self, kind: PacsErrorKind, message: str, *, status: int | None = None,
                 result: object | None = None) -> None:  # an engine.pacs.retrieve.RetrieveResult
        if kind not in PACS_ERROR_KINDS:
            raise ValueError(f"unknown PacsError kind {kind!r}")
        super().__init__(message)
        self.kind: PacsErrorKind = kind
        self.status = status
        self.result = result

    @property
    def message(self) -> str:
        return str(self)

    def with_message(self, message: str) -> PacsError:
        """This error with another message: the same type (a subclass stays one), kind, status,
        result and fields, so code that adds context does not lose what the error is."""
        err = type(self).__new__(type(self))
        err.__dict__.update(self.__dict__)
        err.args = (message,)
        return err


class PacsMalformedAnswer(PacsError):
    """The server's answer cannot be read as DICOMweb: a multipart answer without a usable
    boundary, a part without headers, a media type that was not asked for. Kind ``malformed``."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__("malformed", message, status=status)


class PacsAnswerTooLarge(PacsError):
    """An answer, or one instance of a multipart answer, is larger than ``limit`` bytes: refused
    from its Content-Length before it was read, or when a streamed read reached ``limit``. Kind
    ``too_large``; ``size`` is the announced or reached size in bytes (None if unknown)."""

    def __init__(self, message: str, *, limit: int, size: int | None = None, status: int | None = None) -> None:
        super().__init__("too_large", message, status=status)
        self.limit = limit
        self.size = size
