"""The viewer's toolbar: drawing tools, fit and objective-equivalent zoom presets, undo/redo, the zoom readout."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QToolButton, QWidget

ZOOM_PRESETS = (1, 2, 5, 10, 20, 40)
TOOLS = (("pan", "Pan", "Drag to pan, wheel to zoom, double-click to zoom in"),
         ("rectangle", "Rect", "Draw a rectangle"), ("ellipse", "Ellipse", "Draw an ellipse"),
         ("polygon", "Polygon", "Click vertices; double-click or Enter closes"),
         ("freehand", "Freehand", "Drag to draw an outline"))


def _button(text: str, tip: str = "", checkable: bool = False) -> QToolButton:
    b = QToolButton()
    b.setText(text)
    b.setToolTip(tip)
    b.setCheckable(checkable)
    return b


class ViewerToolbar(QWidget):
    """Buttons only: what they do is the view's (``tool_chosen``, ``fit``, ``zoom_chosen``, ``undo``, ``redo``)."""

    tool_chosen = Signal(str)
    fit = Signal()
    zoom_chosen = Signal(float)
    undo = Signal()
    redo = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        bar = QHBoxLayout(self)
        bar.setContentsMargins(0, 0, 0, 0)
        self.tool_group = QButtonGroup(self)
        self.tool_buttons: dict[str, QToolButton] = {}
        for tool, label, tip in TOOLS:
            b = _button(label, tip, checkable=True)
            b.clicked.connect(lambda _=False, t=tool: self.tool_chosen.emit(t))
            self.tool_group.addButton(b)
            self.tool_buttons[tool] = b
            bar.addWidget(b)
        self.tool_buttons["pan"].setChecked(True)
        bar.addSpacing(12)
        fit = _button("Fit", "Whole slide")
        fit.clicked.connect(self.fit.emit)
        bar.addWidget(fit)
        self.zoom_buttons: list[QToolButton] = []
        for mag in ZOOM_PRESETS:
            b = _button(f"{mag}x", f"Objective-equivalent {mag}x ({10 / mag:g} µm per screen pixel)")
            b.clicked.connect(lambda _=False, m=mag: self.zoom_chosen.emit(float(m)))
            bar.addWidget(b)
            self.zoom_buttons.append(b)
        bar.addSpacing(12)
        self.undo_button = _button("Undo")
        self.undo_button.clicked.connect(self.undo.emit)
        self.redo_button = _button("Redo")
        self.redo_button.clicked.connect(self.redo.emit)
        bar.addWidget(self.undo_button)
        bar.addWidget(self.redo_button)
        bar.addStretch(1)
        self.zoom_label = QLabel("")
        bar.addWidget(self.zoom_label)

    def set_slide_enabled(self, on: bool) -> None:
        for b in list(self.tool_buttons.values()) + self.zoom_buttons:
            b.setEnabled(on)

    def label_presets(self, describe) -> None:
        """``describe(mag)`` gives each preset's (label, tooltip)."""
        for mag, b in zip(ZOOM_PRESETS, self.zoom_buttons):
            text, tip = describe(mag)
            b.setText(text)
            b.setToolTip(tip)

    def show_history(self, can_undo: bool, can_redo: bool) -> None:
        self.undo_button.setEnabled(can_undo)
        self.redo_button.setEnabled(can_redo)
