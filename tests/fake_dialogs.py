"""The window's dialogs for tests (``desktop.dialogs`` interface): answers from queues, messages
recorded instead of shown, so no test ever blocks on a modal dialog."""

from __future__ import annotations


class FakeDialogs:
    """Answers the window's questions from queues; records messages instead of showing them."""

    def __init__(self) -> None:
        self.files: list[list[str]] = []
        self.folders: list[str] = []
        self.models: list[str] = []
        self.csv_paths: list[str] = []
        self.texts: list[str] = []
        self.errors: list[tuple[str, str]] = []
        self.infos: list[tuple[str, str]] = []
        self.confirms: list[bool] = []  # answers to confirm(); True (go ahead) when empty
        self.asked: list[tuple[str, str]] = []
        self.save_paths: list[str] = []  # answers to save_file() (export); "" (cancel) when empty
        self.saved_asked: list[tuple[str, str]] = []
        self.choices: list[str] = []  # answers to choose(); "" (cancel) when empty
        self.choices_offered: list[list[str]] = []
        self.passwords: list[str] = []  # answers to password(); "" (cancel) when empty

    def open_files(self, folder: str) -> list[str]:
        return self.files.pop(0) if self.files else []

    def open_folder(self, folder: str, title: str = "") -> str:
        return self.folders.pop(0) if self.folders else ""

    def open_model(self, folder: str) -> str:
        return self.models.pop(0) if self.models else ""

    def save_csv(self, suggested: str) -> str:
        return self.csv_paths.pop(0) if self.csv_paths else ""

    def text(self, title: str, label: str, default: str = "") -> str:
        return self.texts.pop(0) if self.texts else ""

    def save_file(self, title: str, suggested: str, name_filter: str, suffix: str) -> str:
        self.saved_asked.append((title, suggested))
        return self.save_paths.pop(0) if self.save_paths else ""

    def password(self, title: str, label: str) -> str:
        self.asked.append((title, label))
        return self.passwords.pop(0) if self.passwords else ""

    def choose(self, title: str, label: str, items: list[str]) -> str:
        self.choices_offered.append(list(items))
        return self.choices.pop(0) if self.choices else ""

    def error(self, title: str, text: str) -> None:
        self.errors.append((title, text))

    def info(self, title: str, text: str) -> None:
        self.infos.append((title, text))

    def confirm(self, title: str, text: str, action: str) -> bool:
        self.asked.append((title, text))
        return self.confirms.pop(0) if self.confirms else True
