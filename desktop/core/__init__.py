"""The viewer's Qt-free core: window/level and overlay maths (``windowing``), DICOM
decoding off the GUI process's GIL (``decoder``), the frozen messages that cross threads
(``messages``) and the model's load state (``model_state``).

Nothing here imports PySide6, torch or training (an import-linter contract in
pyproject.toml checks it), so it is tested and usable without Qt.
"""
