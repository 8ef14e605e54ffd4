"""What the PACS screens say and check, without Qt: search criteria from the form, the
rows of the results table, the server form's checks, the send confirmation, the
messages after a retrieve, a send or a received study, and the receiver's allowed
senders and status-bar indicator."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.pacs.summaries import SeriesSummary, StudySummary

AUTH_KINDS = ("none", "basic", "bearer")
AUTH_NAMES = {"none": "No authentication", "basic": "User name and password", "bearer": "Bearer token"}
STUDY_COLUMNS = ("Patient", "Patient ID", "Date", "Modality", "Description", "Accession", "Series")


def person_name(pn: object) -> str:
    """A DICOM person name ("Doe^John^^Dr") as people write it ("Doe, John")."""
    text = str(pn or "").split("=")[0]  # alphabetic group only
    parts = [p.strip() for p in text.split("^")]
    family, given = (parts + ["", ""])[:2]
    if family and given:
        return f"{family}, {given}"
    return family or given


def show_date(da: object) -> str:
    """A DICOM date (YYYYMMDD) as YYYY-MM-DD; anything else as it came."""
    s = str(da or "").strip()
    return f"{s[:4]}-{s[4:6]}-{s[6:8]}" if re.fullmatch(r"\d{8}", s) else s


def parse_date(text: str) -> str:
    """A date typed as YYYY-MM-DD, YYYY/MM/DD or YYYYMMDD -> YYYYMMDD ("" for nothing).
    Raises ValueError saying what to type."""
    s = text.strip()
    if not s:
        return ""
    digits = re.sub(r"[-/.]", "", s)
    if re.fullmatch(r"\d{8}", digits):
        try:
            date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
            return digits
        except ValueError:
            pass
    raise ValueError(f"'{s}' is not a date: type it as YYYY-MM-DD (for example 2024-03-31).")


@dataclass(frozen=True)
class SearchForm:
    """The Open from PACS search fields, as typed."""

    patient_id: str = ""
    patient_name: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    accession: str = ""

    def criteria(self) -> dict[str, str]:
        """Keyword arguments for ``PacsClient.search_studies`` (dates as YYYYMMDD).
        Raises ValueError with a message for the user when a field is not valid."""
        d_from, d_to = parse_date(self.date_from), parse_date(self.date_to)
        if d_from and d_to and d_from > d_to:
            raise ValueError(f"The date range ends ({show_date(d_to)}) before it starts ({show_date(d_from)}): "
                             "swap the two dates.")
        modality = self.modality.strip().upper()
        if modality and not re.fullmatch(r"[A-Z0-9]{1,16}", modality):
            raise ValueError(f"'{self.modality.strip()}' is not a DICOM modality code: use letters such as CR, DX or CT.")
        return {"patient_id": self.patient_id.strip(), "patient_name": self.patient_name.strip(),
                "date_from": d_from, "date_to": d_to, "modality": modality, "accession": self.accession.strip()}

    def describe(self) -> str:
        c = {k: v for k, v in self.criteria().items() if v}
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in c.items()) or "no criteria (every study)"


def _text(v: object) -> str:
    if isinstance(v, (list, tuple)):
        return "/".join(str(x) for x in v if x)
    return str(v) if v is not None else ""


def study_row(s: StudySummary) -> tuple[str, ...]:
    """The results table's cells for one study summary (``STUDY_COLUMNS``)."""
    return (person_name(s.patient_name), s.patient_id, show_date(s.study_date), _text(s.modalities),
            s.description, s.accession, _text(s.n_series))


def series_row(s: SeriesSummary) -> tuple[str, ...]:
    """The cells of one series under its study (number, modality, description, images)."""
    n = s.n_instances
    images = f"{n} image{'s' if n != 1 else ''}" if n is not None else ""
    return (f"Series {_text(s.number)}".strip(), "", "", s.modality, s.description, "", images)


def study_label(s: StudySummary) -> str:
    """A short name for a study in messages: patient, date and description."""
    bits = [person_name(s.patient_name) or s.patient_id, show_date(s.study_date), s.description]
    return " ".join(b for b in bits if b) or s.study_uid


# -- servers ------------------------------------------------------------------------------
def server_problem(problem: str | None, name: str, taken: Iterable[str] = ()) -> str:
    """What is wrong with a server form ("" when nothing is): ``ServerConfig.problem()``'s
    answer, or a name another server already has."""
    if problem:
        return problem
    if name.strip() in set(taken):
        return f"There is already a server called '{name.strip()}': choose another name."
    return ""


def server_title(name: str, url: str) -> str:
    return f"{name} at {url}"


def secret_label(auth: str) -> str:
    return "Token" if auth == "bearer" else "Password"


# -- sending ------------------------------------------------------------------------------
def confirm_send_text(kinds: Sequence[str], sources: Sequence[str], server: str, url: str) -> str:
    """'Send 2 objects (SR, SC) for chest.dcm to Orthanc-test at http://…?'"""
    n = len(kinds)
    unique: list[str] = []
    for k in kinds:
        if k not in unique:
            unique.append(k)
    what = f"{n} object{'s' if n != 1 else ''} ({', '.join(unique)})" if n else "no objects"
    if len(sources) == 1:
        src = sources[0]
    else:
        src = f"{len(sources)} images"
    return (f"Send {what} for {src} to {server_title(server, url)}?\n\n"
            "They become part of the patient's study on that server. Research use only, not for diagnosis.")


def send_outcome_text(stored: int, failed: int, server: str, message: str = "") -> str:
    if failed == 0 and stored:
        return f"Sent {stored} object{'s' if stored != 1 else ''} to {server}."
    head = f"{server} stored {stored} of {stored + failed} objects; {failed} failed."
    return f"{head} {message}".strip() + " Check the server's connection and try again; nothing was deleted."


# -- retrieving and receiving -------------------------------------------------------------------
def retrieve_outcome_text(n_files: int, total: int, complete: bool, cancelled: bool, message: str = "") -> str:
    """What a retrieve got, for the status bar or a message box."""
    if complete:
        return f"Retrieved {n_files} image{'s' if n_files != 1 else ''}."
    got = f"{n_files} of {total}" if total else f"{n_files}"
    what = "Retrieve cancelled" if cancelled else "Retrieve failed"
    tail = (" No partial file was kept; the complete images are in the cache and can be opened."
            if n_files else " Nothing was kept.")
    why = f" {message.strip()}" if message and message.strip() else ""
    return f"{what}: {got} image{'s' if (total or n_files) != 1 else ''} fetched.{why}{tail}"


def received_text(label: str, n_images: int) -> str:
    return f"Received study {label} ({n_images} image{'s' if n_images != 1 else ''})"


def receiver_settings_error(ae_title: str, port: int) -> str:
    """What is wrong with the receiver's AE title and port ("" when nothing is)."""
    if what := _ae_problem(ae_title, "RADLENS"):
        return f"The AE title {what}."
    if not 1 <= int(port) <= 65535:
        return f"Port {port} is not a TCP port: choose one between 1024 and 65535 (104 needs administrator rights)."
    return ""


# -- the receiver's listening address, allowed senders and status-bar indicator ------------------
ANY_INTERFACE = ("0.0.0.0", "::")
NO_PEERS_TEXT = ("No PACS may send to RadLens yet: add the PACS's AE title (and its IP address) under Allowed "
                 "senders in Settings > PACS servers…, or tick 'Accept any caller' there, then turn the receiver "
                 "on again.")
NOT_RESTARTED_TEXT = ("The study receiver is off: it was on when RadLens last closed, but it does not start by "
                      "itself. File > Receive studies turns it on; to start it with RadLens, tick 'Start the "
                      "receiver when RadLens starts' in Settings > PACS servers….")


def _ae_problem(ae_title: str, example: str = "ORTHANC") -> str:
    ae = ae_title.strip()
    if not ae or len(ae) > 16 or not all(32 <= ord(c) < 127 and c != "\\" for c in ae):
        return f"must be 1 to 16 plain characters (letters, digits, spaces), for example {example}"
    return ""


def receiver_problem(ae_title: str, port: int, peers: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> str:
    """What is wrong with the receiver's AE title, port or allowed senders ("" when nothing is)."""
    return receiver_settings_error(ae_title, port) or next(
        (q for q in (peer_problem(ae, addr) for ae, addr in peers) if q), "")


def peer_problem(ae_title: str, address: str) -> str:
    """What is wrong with one allowed sender ("" when nothing is): its calling AE title, and an
    optional IP address or network (10.1.2.0/24)."""
    what = _ae_problem(ae_title)
    if what:
        shown = ae_title.strip() or "(empty)"
        return f"The allowed sender's AE title {shown!r} {what}."
    text = address.strip()
    if text:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            return (f"The address {text!r} of the allowed sender {ae_title.strip()} is not an IP address: give its "
                    "address (e.g. 192.168.1.10), a network (e.g. 192.168.1.0/24), or nothing for any address.")
    return ""


def endpoint(host: str, port: int) -> str:
    """host:port as people write it ([::1]:11112 for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reach(host: str) -> str:
    if host in ANY_INTERFACE:
        return "every network interface: other computers can connect"
    if host.startswith("127.") or host == "::1":
        return "this computer only"
    return "this network address: other computers can connect"


def _who(n_peers: int, accept_any: bool) -> str:
    if accept_any:
        return "from any caller"
    return f"from {n_peers} peer{'s' if n_peers != 1 else ''}" if n_peers else "from no one"


def receiver_indicator_text(host: str, port: int, ae_title: str, n_peers: int, accept_any: bool) -> str:
    """The status bar's receiver indicator: 'Receiving on 127.0.0.1:11112 as RADLENS · from 2 peers'."""
    return f"Receiving on {endpoint(host, port)} as {ae_title} \u00b7 {_who(n_peers, accept_any)}"


def receiver_indicator_tooltip(host: str, port: int, ae_title: str, peers: Sequence[tuple[str, str]],
                               accept_any: bool, cache: str) -> str:
    """The indicator's tooltip: where it listens, who may send, where studies go, how to stop it."""
    if accept_any:
        who = "Accepts any caller that addresses AE title " + ae_title + "."
    elif peers:
        who = "Accepts only: " + "; ".join(f"{ae} at {addr}" if addr else f"{ae} (any address)"
                                           for ae, addr in peers) + "."
    else:
        who = "Accepts no one (no allowed sender is set)."
    return (f"DICOM study receiver (C-STORE), AE title {ae_title}, listening on {endpoint(host, port)} "
            f"({_reach(host)}).\n{who}\nReceived studies go to {cache}.\n"
            "Turn it off with File > Receive studies; change it in Settings > PACS servers…")


def receiver_started_text(host: str, port: int, ae_title: str, n_peers: int, accept_any: bool, cache: str,
                          at_launch: bool = False) -> str:
    """The status bar message when the receiver starts; at launch it says why, the key facts first
    (the status bar cuts a long message)."""
    where = f"on {endpoint(host, port)} as {ae_title}, {_who(n_peers, accept_any)}"
    if at_launch:
        return (f"Study receiver started with RadLens: listening {where} ('Start the receiver when RadLens "
                f"starts' is on in Settings > PACS servers…). Received studies go to {cache}.")
    return f"Receiving studies {where}; they go to {cache}."
