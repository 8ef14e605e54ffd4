"""The main window's actions, menus and toolbar. View, window/level and Grad-CAM actions
are made by ``DisplayController``; here they are only placed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar

from .display_control import action
from .settings import DEVICES

if TYPE_CHECKING:
    from .main_window import MainWindow


def make_actions(win: MainWindow) -> None:
    """File, navigation, help and device actions (view and Grad-CAM ones live in DisplayController)."""
    win.open_action = action(win, "&Open…", QKeySequence.StandardKey.Open, "Open radiographs (PNG, JPEG, DICOM)")
    win.open_action.triggered.connect(win.open_dialog)
    win.folder_action = action(win, "Open &folder…", "Ctrl+Shift+O", "Open every image in a folder as a study")
    win.folder_action.triggered.connect(win.open_folder_dialog)
    win.batch_action = action(win, "&Analyse folder (batch)…", "Ctrl+B", "Analyse a whole folder and export a CSV")
    win.batch_action.triggered.connect(win.batch_dialog)
    win.model_action = action(win, "Load &model…", "Ctrl+M", "Use another RadLens .onnx model")
    win.model_action.triggered.connect(win.load_model_dialog)
    win.quit_action = action(win, "&Quit", QKeySequence.StandardKey.Quit, "Quit RadLens")
    win.quit_action.triggered.connect(win.close)
    win.card_action = action(win, "Model &card…", "Ctrl+I", "What the model was trained on and how well it does")
    win.card_action.triggered.connect(win.show_model_card)
    win.card_action.setEnabled(False)
    win.next_action = action(win, "&Next image", "PgDown", "Next image of the study")
    win.next_action.triggered.connect(lambda: win.study.browser.move(1))
    win.prev_action = action(win, "&Previous image", "PgUp", "Previous image of the study")
    win.prev_action.triggered.connect(lambda: win.study.browser.move(-1))
    win.save_preset_action = action(win, "&Save window as preset…", "Ctrl+Shift+W", "Keep this window/level")
    win.save_preset_action.triggered.connect(win.save_preset)
    win.fullscreen_action = action(win, "F&ull screen", "F11", "Full screen", checkable=True)
    win.fullscreen_action.toggled.connect(lambda on: win.showFullScreen() if on else win.showNormal())
    win.shortcuts_action = action(win, "&Shortcuts…", QKeySequence.StandardKey.HelpContents, "Every keyboard shortcut")
    win.shortcuts_action.triggered.connect(win.show_shortcuts)
    win.about_action = action(win, "&About RadLens…", None, "Version and intended use")
    win.about_action.triggered.connect(win.show_about)
    win.device_group = QActionGroup(win)
    win.device_actions: dict[str, QAction] = {}
    names = {"auto": "Automatic (GPU if it works)", "cpu": "CPU", "cuda": "CUDA GPU"}
    for d in DEVICES:
        act = action(win, names[d], None, f"Run the model on: {names[d]}", checkable=True)
        act.setChecked(d == win.device)
        act.triggered.connect(lambda _=False, dev=d: win.set_device(dev))
        win.device_group.addAction(act)
        win.device_actions[d] = act

def make_menus(win: MainWindow) -> None:
    mb = win.menuBar()
    f = mb.addMenu("&File")
    f.addActions([win.open_action, win.folder_action])
    win.recent_menu = QMenu("Open &recent", win)
    win.recent_menu.aboutToShow.connect(win._fill_recent)
    f.addMenu(win.recent_menu)
    f.addSeparator()
    f.addAction(win.batch_action)
    f.addSeparator()
    f.addAction(win.model_action)
    f.addSeparator()
    f.addAction(win.quit_action)
    v = mb.addMenu("&View")
    d = win.display
    v.addActions([d.fit, d.actual, d.zoom_in, d.zoom_out])
    v.addSeparator()
    wl = v.addMenu("&Window/level")
    wl.addActions(d.preset_actions)
    wl.addSeparator()
    wl.addActions([d.numeric, win.save_preset_action])
    v.addActions([d.invert_action, d.reset])
    v.addSeparator()
    v.addActions([win.prev_action, win.next_action])
    v.addSeparator()
    panels = v.addMenu("&Panels")
    panels.addAction(win.study.dock.toggleViewAction())
    panels.addAction(win.analysis.toggleViewAction())
    tags = win.tags.toggleViewAction()
    tags.setShortcut(QKeySequence("Ctrl+T"))
    panels.addAction(tags)
    win.tags_toggle = tags
    v.addAction(win.fullscreen_action)
    an = mb.addMenu("&Analysis")
    an.addActions([d.cam_toggle, d.cam_next, d.cam_less, d.cam_more])
    an.addSeparator()
    an.addAction(win.card_action)
    dev = an.addMenu("&Device")
    dev.addActions(list(win.device_actions.values()))
    h = mb.addMenu("&Help")
    h.addActions([win.shortcuts_action, win.about_action])

def make_toolbar(win: MainWindow) -> None:
    tb = QToolBar("Main toolbar", win)
    tb.setObjectName("mainToolbar")
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    tb.addActions([win.open_action, win.folder_action, win.batch_action])
    tb.addSeparator()
    d = win.display
    tb.addActions([d.fit, d.actual, d.invert_action, d.reset])
    tb.addSeparator()
    tb.addWidget(d.bar)
    tb.addSeparator()
    tb.addAction(d.cam_toggle)
    win.addToolBar(tb)
    win.toolbar = tb
