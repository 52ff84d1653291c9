"""The radiology workspace's two tool rows, bound to its session: layout, window/level (presets, typed values,
invert) on top; the left-drag tool, brush size, undo/redo, engines and export below."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLineEdit, QMenu, QSpinBox, QToolButton

if TYPE_CHECKING:
    from app.workspaces.radiology.view import RadiologyWorkspace

# (name, width, level) in HU
CT_PRESETS = [("Brain", 80, 40), ("Subdural", 200, 80), ("Stroke", 40, 40), ("Lung", 1500, -600),
              ("Mediastinum", 350, 50), ("Abdomen", 400, 40), ("Liver", 150, 30), ("Bone", 1800, 400)]
TOOLS = ["Navigate", "Ruler", "ROI", "Brush", "Eraser"]


def _button(text: str, tip: str = "", slot=None) -> QToolButton:
    b = QToolButton()
    b.setText(text)
    b.setToolTip(tip)
    if slot is not None:
        b.clicked.connect(slot)
    return b


class WindowToolbar:
    """The viewing row (``self.top``) and the tools row (``self.tools``); W/L shows the session's window."""

    def __init__(self, workspace: "RadiologyWorkspace") -> None:
        self.ws = workspace
        self.session = workspace.session
        self._drag_start: tuple[float, float] | None = None
        self.layout_box = QComboBox()
        self.layout_box.addItems(["Three views", "Axial", "Coronal", "Sagittal", "Side by side"])
        self.layout_box.setToolTip("Layout (L toggles three views / single)")
        self.layout_box.currentIndexChanged.connect(self._layout_chosen)
        self.preset_box = QComboBox()
        self.preset_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.preset_box.setMinimumContentsLength(9)
        self.preset_box.setToolTip("Window presets (keys 1-8 for CT presets, A for auto)")
        self.preset_box.activated.connect(self.preset_chosen)
        self.wl_label = QLineEdit("W — L —")
        self.wl_label.setToolTip("Window width and level: type e.g. 'W 80 L 40' (or '80 40') and press Enter; "
                                 "right-drag in a view changes them too")
        self.wl_label.setMinimumWidth(125)
        self.wl_label.setMaximumWidth(150)
        self.wl_label.editingFinished.connect(self.typed_window)
        self.invert_box = QCheckBox("Invert")
        self.invert_box.toggled.connect(self.session.set_invert)
        self.tool_box = QComboBox()
        self.tool_box.addItems(TOOLS)
        self.tool_box.setToolTip("Left-drag action: move the crosshair, measure a distance, draw an ROI, or "
                                 "correct the current label layer (brush paints the selected label)")
        self.brush_size = QSpinBox()
        self.brush_size.setRange(1, 50)
        self.brush_size.setValue(5)
        self.brush_size.setSuffix(" mm")
        self.brush_size.setToolTip("Brush radius")
        self.brush_size.setVisible(False)
        self.undo_button = _button("Undo", "Undo the last brush or eraser stroke (Ctrl+Z)", workspace.undo_edit)
        self.redo_button = _button("Redo", "Redo the stroke undone last (Ctrl+Shift+Z)", workspace.redo_edit)
        for b in (self.undo_button, self.redo_button):
            b.setEnabled(False)
        self.tool_box.currentTextChanged.connect(self.set_tool)
        self.engine_button = _button("Run engine")
        self.engine_button.setPopupMode(QToolButton.InstantPopup)
        self.engine_menu = QMenu(self.engine_button)
        self.engine_menu.aboutToShow.connect(workspace._fill_engine_menu)
        self.engine_button.setMenu(self.engine_menu)
        self.cancel_button = _button("Cancel", "", workspace.cancel_engine)
        self.cancel_button.setEnabled(False)
        self.top = QHBoxLayout()  # two rows, so the window still fits a 1366-pixel screen
        for w in (self.layout_box, self.preset_box, self.wl_label, self.invert_box,
                  _button("Reset", "Reset zoom and pan (R)", workspace.reset_views)):
            self.top.addWidget(w)
        self.top.addStretch(1)
        self.top.addWidget(_button("Sample", "Open the bundled phantom CT series", workspace.open_sample))
        self.tools = QHBoxLayout()
        clear = _button("Clear", "Delete every ruler and ROI (the Measurements tab deletes one at a time)",
                        self.session.measurements.clear)
        for w in (self.tool_box, self.brush_size, self.undo_button, self.redo_button, clear):
            self.tools.addWidget(w)
        self.tools.addStretch(1)
        for w in (self.engine_button, self.cancel_button, workspace._build_export_button()):
            self.tools.addWidget(w)
        self.session.window_changed.connect(lambda _w, _l: self.show_window())
        self.session.history_changed.connect(self._history)
        self.session.invert_changed.connect(self._show_invert)

    # ============================================================================================ layout
    def show_layout(self, index: int) -> None:
        if self.layout_box.currentIndex() != index:
            self.layout_box.blockSignals(True)
            self.layout_box.setCurrentIndex(index)
            self.layout_box.blockSignals(False)

    def _layout_chosen(self, index: int) -> None:
        if index == 0:
            self.ws.set_layout("three")
        elif index == 4:
            self.ws.set_layout("side")
        else:
            self.ws.set_layout("single", ("axial", "coronal", "sagittal")[index - 1])

    # ============================================================================================ window
    def fill_presets(self, modality: str) -> None:
        self.preset_box.blockSignals(True)
        self.preset_box.clear()
        self.preset_box.addItem("Custom")
        if modality == "CT":
            for n, (name, w, level) in enumerate(CT_PRESETS, start=1):
                self.preset_box.addItem(f"{n} {name}  (W {w} L {level})", (w, level))
        self.preset_box.addItem("A Auto (1–99 % of the histogram)", "auto")
        self.preset_box.blockSignals(False)

    def preset_chosen(self, index: int) -> None:
        data = self.preset_box.itemData(index)
        if data == "auto":
            self.ws.auto_window()
        elif data:
            self.session.set_window(*data)
        self.show_preset()

    def typed_window(self) -> None:
        numbers = re.findall(r"-?\d+(?:\.\d+)?", self.wl_label.text())
        if len(numbers) == 2 and float(numbers[0]) > 0:
            self.session.set_window(float(numbers[0]), float(numbers[1]))
        else:
            self.show_window()  # not two numbers: show the current values again

    def window_drag(self, dx: float, dy: float, start: bool, finish: bool) -> None:
        if self.session.volume is None:
            return
        if start or self._drag_start is None:
            self._drag_start = self.session.window
        self.session.drag_window(self._drag_start, dx, dy)
        if finish:
            self._drag_start = None

    def show_window(self) -> None:
        width, level = self.session.window
        unit = self.session.volume.unit() if self.session.volume is not None else ""
        self.wl_label.setText(f"W {width:.0f}  L {level:.0f} {unit}".strip())
        self.wl_label.setCursorPosition(0)
        self.show_preset()

    def show_preset(self) -> None:
        """The preset box names the window in use: a preset, 'Auto', or 'Custom' (after a drag or typing)."""
        width, level = self.session.window
        index = 0
        for n in range(1, self.preset_box.count()):
            data = self.preset_box.itemData(n)
            values = self.session.auto_window_values if data == "auto" else data
            if values and abs(values[0] - width) < 0.5 and abs(values[1] - level) < 0.5:
                index = n
                break
        self.preset_box.blockSignals(True)
        self.preset_box.setCurrentIndex(index)
        self.preset_box.blockSignals(False)

    def _show_invert(self, on: bool) -> None:
        if self.invert_box.isChecked() != on:
            self.invert_box.blockSignals(True)
            self.invert_box.setChecked(on)
            self.invert_box.blockSignals(False)

    # ============================================================================================ tools
    def set_tool(self, text: str) -> None:
        for view in self.ws.planes.all_views():
            view.tool = text.lower()
        self.brush_size.setVisible(text.lower() in ("brush", "eraser"))

    def _history(self, can_undo: bool, can_redo: bool) -> None:
        self.undo_button.setEnabled(can_undo)
        self.redo_button.setEnabled(can_redo)
