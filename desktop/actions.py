"""The main window's own actions (file, navigation, help, device), its menus and its
toolbar. View, window/level and Grad-CAM actions are made by ``DisplayController``;
here they are only placed. The window holds one ``Actions`` and connects it: nothing
here knows the window's class or its methods."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QComboBox, QMainWindow, QMenu, QToolBar

from engine.ai.model import DEVICES

from .viewer.display_control import DisplayController, action

DEVICE_NAMES = {"auto": "Automatic (GPU if it works)", "cpu": "CPU", "cuda": "CUDA GPU"}
# The toolbar's short labels (an action's name, without "&" or "…" -> its button's text), so every
# button, the window/level bar and the heatmap toggle fit one row of a 1024 px window. An action
# not listed shows its full name.
WL_PRESET_CHARS = 9  # the toolbar's preset selector: a long name elided a little (its list shows it whole)
WL_BOX_WIDTH = 80  # the toolbar's centre and width boxes, at most ("-1350.5" fits)


class Actions:
    """Creates the actions (parented to ``win``, so the window's shortcuts work and
    ``findChildren(QAction)`` lists them); ``build_menus`` and ``build_toolbar`` place
    them. The caller connects ``triggered``/``toggled`` to its own slots."""

    def __init__(self, win: QMainWindow, device: str, devices: Sequence[str] = DEVICES) -> None:
        self.open = action(win, "&Open…", QKeySequence.StandardKey.Open, "Open radiographs (PNG, JPEG, DICOM)",
                           short="Open")
        self.folder = action(win, "Open &folder…", "Ctrl+Shift+O", "Open every image in a folder as a study",
                             short="Folder")
        self.batch = action(win, "&Analyse folder (batch)…", "Ctrl+B", "Analyse a whole folder and export a CSV")
        self.model = action(win, "Load &model…", "Ctrl+M", "Use another RadLens .onnx model")
        self.quit = action(win, "&Quit", QKeySequence.StandardKey.Quit, "Quit RadLens")
        self.card = action(win, "Model &card…", "Ctrl+I", "What the model was trained on and how well it does")
        self.card.setEnabled(False)
        self.adapt = action(win, "&Adapt to this site…", None,
                            "Refit the model on your site's confirmed films and save it as a new model")
        self.adapt.setEnabled(False)
        self.bundled = action(win, "Use the &bundled model", None, "Switch back to the model that ships with RadLens")
        self.next = action(win, "&Next image", "PgDown", "Next image of the study")
        self.prev = action(win, "&Previous image", "PgUp", "Previous image of the study")
        self.save_preset = action(win, "&Save window as preset…", "Ctrl+Shift+W", "Keep this window/level")
        self.fullscreen = action(win, "F&ull screen", "F11", "Full screen", checkable=True)
        self.shortcuts = action(win, "&Shortcuts…", QKeySequence.StandardKey.HelpContents, "Every keyboard shortcut")
        self.about = action(win, "&About RadLens…", None, "Version and intended use")
        self.device_group = QActionGroup(win)
        self.devices: dict[str, QAction] = {}
        for d in devices:
            name = DEVICE_NAMES.get(d, d)
            act = action(win, name, None, f"Run the model on: {name}", checkable=True)
            act.setChecked(d == device)
            self.device_group.addAction(act)
            self.devices[d] = act
        self.recent_menu = QMenu("Open &recent", win)
        self.tags_toggle: QAction | None = None  # set by build_menus
        self.toolbar: QToolBar | None = None  # set by build_toolbar
        self.wl_action: QAction | None = None  # the toolbar's window/level bar (set by build_toolbar)

    def model_actions_enabled(self, on: bool) -> None:
        """Actions that need a model: the model card and batch analysis."""
        self.card.setEnabled(on)
        self.batch.setEnabled(on)
        self.adapt.setEnabled(on)

    def build_menus(self, win: QMainWindow, display: DisplayController, study_toggle: QAction,
                    analysis_toggle: QAction, tags_toggle: QAction) -> None:
        mb = win.menuBar()
        f = mb.addMenu("&File")
        self.file_menu = f
        f.addActions([self.open, self.folder])
        f.addMenu(self.recent_menu)
        f.addSeparator()
        f.addAction(self.batch)
        f.addSeparator()
        f.addAction(self.model)
        f.addSeparator()
        f.addAction(self.quit)
        v = mb.addMenu("&View")
        self.view_menu = v
        d = display
        v.addActions([d.fit, d.actual, d.zoom_in, d.zoom_out])
        v.addSeparator()
        wl = v.addMenu("&Window/level")
        wl.addActions(d.preset_actions)
        wl.addSeparator()
        wl.addActions([d.numeric, self.save_preset])
        v.addActions([d.invert_action, d.reset])
        v.addSeparator()
        v.addAction(d.lung_toggle)
        v.addSeparator()
        v.addActions([self.prev, self.next])
        v.addSeparator()
        panels = v.addMenu("&Panels")
        panels.addAction(study_toggle)
        panels.addAction(analysis_toggle)
        tags_toggle.setShortcut(QKeySequence("Ctrl+T"))
        panels.addAction(tags_toggle)
        self.tags_toggle = tags_toggle
        v.addAction(self.fullscreen)
        an = mb.addMenu("&Analysis")
        an.addActions([d.cam_toggle, d.cam_next, d.cam_less, d.cam_more])
        an.addSeparator()
        an.addAction(self.batch)  # also under File: where people look for it
        an.addAction(self.card)
        an.addSeparator()
        an.addActions([self.adapt, self.bundled])
        dev = an.addMenu("&Device")
        dev.addActions(list(self.devices.values()))
        h = mb.addMenu("&Help")
        h.addActions([self.shortcuts, self.about])

    def place_compare_export(self, compare: Sequence[QAction], export: Sequence[QAction]) -> None:
        """File > Export… after the recent files; View > Compare after the image navigation."""
        self.file_menu.insertActions(self.batch, list(export))
        self.file_menu.insertSeparator(self.batch)
        sub = QMenu("&Compare", self.view_menu)
        sub.addActions(list(compare))
        acts = self.view_menu.actions()
        after = acts[acts.index(self.next) + 1] if self.next in acts[:-1] else None
        if after is not None:
            self.view_menu.insertMenu(after, sub)
        else:
            self.view_menu.addMenu(sub)

    def build_toolbar(self, win: QMainWindow, display: DisplayController) -> QToolBar:
        """One row that fits a 1024 px window (short labels: ``action(..., short=)``), the window/level bar and the
        heatmap toggle never pushed into the overflow chevron."""
        tb = QToolBar("Main toolbar", win)
        tb.setObjectName("mainToolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        d = display
        tb.addActions([self.open, self.folder])  # batch analysis: File and Analysis menus, Ctrl+B
        tb.addSeparator()
        tb.addActions([d.fit, d.actual, d.invert_action, d.reset])
        tb.addSeparator()
        bar = d.bar  # a narrower window/level bar: the preset's name and the numbers still fit
        bar.preset.setMinimumContentsLength(WL_PRESET_CHARS)
        bar.preset.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        for box in (bar.center, bar.width):
            box.setMinimumWidth(min(box.minimumWidth(), WL_BOX_WIDTH))
            box.setMaximumWidth(WL_BOX_WIDTH)
        self.wl_action = tb.addWidget(bar)
        tb.addSeparator()
        tb.addAction(d.cam_toggle)
        win.addToolBar(tb)
        self.toolbar = tb
        return tb
