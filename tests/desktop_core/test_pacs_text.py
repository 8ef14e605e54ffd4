"""What the PACS screens say and check (desktop.core.pacs_text), without Qt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from desktop.core.pacs_text import (
    SearchForm,
    confirm_send_text,
    person_name,
    receiver_settings_error,
    retrieve_outcome_text,
    series_row,
    server_problem,
    study_row,
)
from engine.pacs.servers import ServerConfig
from engine.pacs.summaries import SeriesSummary, StudySummary

REPO = Path(__file__).resolve().parents[2]


def test_pacs_core_imports_no_qt() -> None:
    code = ("import sys, desktop.core.pacs_text, desktop.core.pacs_secrets\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'torch')))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_search_form_turns_typed_fields_into_criteria() -> None:
    c = SearchForm(patient_name=" Doe ", date_from="2024-03-01", date_to="2024/03/31", modality="cr").criteria()
    assert c == {"patient_id": "", "patient_name": "Doe", "date_from": "20240301", "date_to": "20240331",
                 "modality": "CR", "accession": ""}


@pytest.mark.parametrize("form, words", [
    (SearchForm(date_from="2024-02-30"), "YYYY-MM-DD"),
    (SearchForm(date_from="yesterday"), "not a date"),
    (SearchForm(date_from="2024-03-02", date_to="2024-03-01"), "swap"),
    (SearchForm(modality="C R;"), "modality code"),
])
def test_search_form_says_what_is_wrong(form: SearchForm, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        form.criteria()


def test_rows_from_the_engines_summaries() -> None:
    s = StudySummary("1.2.3", patient_id="P1", patient_name="Doe^Jane", study_date="20240105", accession="A7",
                     description="Chest PA", modalities=("CR", "SR"), n_series=2)
    assert study_row(s) == ("Doe, Jane", "P1", "2024-01-05", "CR/SR", "Chest PA", "A7", "2")
    se = SeriesSummary("1.2.3.4", "1.2.3", modality="CR", number=3, description="PA", n_instances=1)
    assert series_row(se) == ("Series 3", "", "", "CR", "PA", "", "1 image")
    assert person_name("") == "" and person_name("SMITH") == "SMITH"


def test_server_form_problems() -> None:
    ok = ServerConfig("Orthanc", "http://localhost:8042/dicom-web")
    assert server_problem(ok.problem(), ok.name, ["Other"]) == ""
    assert "already a server" in server_problem(ok.problem(), ok.name, ["Orthanc"])
    bad = ServerConfig("Orthanc", "localhost:8042")
    assert "http" in server_problem(bad.problem(), bad.name)


def test_confirmation_names_the_server_and_the_objects() -> None:
    text = confirm_send_text(["SR", "SC"], ["chest.dcm"], "Orthanc-test", "http://127.0.0.1:8042/dicom-web")
    assert text.startswith("Send 2 objects (SR, SC) for chest.dcm to Orthanc-test at http://127.0.0.1:8042/dicom-web?")
    assert "for 3 images" in confirm_send_text(["SR", "SC"] * 3, ["a", "b", "c"], "X", "http://x")


def test_retrieve_messages_say_what_was_fetched() -> None:
    assert retrieve_outcome_text(3, 3, True, False) == "Retrieved 3 images."
    msg = retrieve_outcome_text(2, 5, False, True)
    assert msg.startswith("Retrieve cancelled: 2 of 5 images fetched.") and "No partial file" in msg
    assert "Nothing was kept" in retrieve_outcome_text(0, 5, False, False, "Server down.")


def test_receiver_settings() -> None:
    assert receiver_settings_error("RADLENS", 11112) == ""
    assert "AE title" in receiver_settings_error("A" * 17, 11112)
    assert "port" in receiver_settings_error("RADLENS", 70000).lower()
