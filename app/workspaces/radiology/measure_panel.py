"""The Measurements tab and the glue between the slice views and the session's ``MeasurementSet``.

A ruler or ROI dragged on a view is measured by ``engines.radiology.measurements`` (patient millimetres,
pixel-exact ROI statistics, computed in a worker when the drag ends) and kept with the plane and slice it was
drawn on; each view draws only the measurements of the slice it shows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from engines.radiology.measurements import PLANE_AXES
from engines.radiology.session import measure_roi

if TYPE_CHECKING:
    from app.workspaces.radiology.view import RadiologyWorkspace


class MeasurementsPanel(QWidget):
    """Lists every measurement (name, plane, slice, value); Delete removes the selected ones and a
    double-click goes to the slice a measurement is on."""

    def __init__(self, workspace: "RadiologyWorkspace", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.measurements = workspace.session.measurements
        self.measurements.subscribe(self._changed)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Name", "Plane", "Slice", "Value"])
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QTreeWidget.ExtendedSelection)
        self.tree.setColumnWidth(0, 70)
        self.tree.setColumnWidth(1, 62)
        self.tree.setColumnWidth(2, 40)
        self.tree.itemDoubleClicked.connect(self._go_to)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the selected measurements (Delete key)")
        self.delete_button.clicked.connect(self.delete_selected)
        clear = QPushButton("Delete all")
        clear.clicked.connect(self.measurements.clear)
        shortcut = QShortcut(QKeySequence.Delete, self.tree)
        shortcut.setContext(Qt.WidgetShortcut)
        shortcut.activated.connect(self.delete_selected)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        row = QHBoxLayout()
        row.addWidget(self.delete_button)
        row.addWidget(clear)
        row.addStretch(1)
        layout.addLayout(row)

    # -- from the views -----------------------------------------------------------------------------------
    def dragged(self, plane: str, kind: str, h0: float, v0: float, h1: float, v1: float, finished: bool) -> None:
        """A ruler/ROI drag on ``plane``: measured on the slice shown there, kept once the drag ends."""
        ws = self.workspace
        if ws.volume is None:
            return
        view = ws.views[plane]
        index = ws.cursor[PLANE_AXES[plane][0]]
        where = f"{plane} slice {index + 1}: "
        if kind == "ruler":
            m = ws.session.measure_ruler(plane, (h0, v0), (h1, v1))
            if finished:
                view.show_measure_text("", None)
                self.measurements.add(m)
            else:
                view.show_measure_text(m.value_text(), QPointF(h1, v1))
            ws.measure_label.setText(f"{where}{m.name + ' ' if m.name else ''}{m.value_text()}")
            return
        view.show_measure_text("", None)
        if not finished:
            ws.measure_label.setText(f"{where}ROI {abs(h1 - h0):.1f} × {abs(v1 - v0):.1f} mm (release to measure)")
            return
        volume = ws.volume

        def done(m) -> None:
            if ws.volume is volume:
                self.measurements.add(m)
                ws.measure_label.setText(f"{where}{m.name} {m.value_text()}")

        ws.context.tasks.submit(lambda progress, cancel: measure_roi(volume, plane, index, (h0, v0), (h1, v1)),
                                title="Measuring the ROI", on_result=done, on_error=ws._error)

    # -- drawing ----------------------------------------------------------------------------------------
    def draw(self, plane: str) -> None:
        """Give ``plane``'s view the measurements of the slice it shows."""
        ws = self.workspace
        view = ws.views[plane]
        if ws.volume is None:
            view.clear_measurements()
            return
        spacing = ws.volume.geometry.spacing
        index = ws.cursor[PLANE_AXES[plane][0]]
        items = []
        for m in self.measurements.on_slice(plane, index):
            a, b = m.view_points_mm(spacing)
            if m.kind == "ruler":
                text = f"{m.name}: {m.length_mm:.1f} mm"
            else:
                text = f"{m.name}: mean {m.stats.mean:.1f}" if m.stats is not None else m.name
            items.append((m.kind, a, b, text))
        view.show_measurements(items)

    def _changed(self, event: str, m) -> None:
        self.tree.clear()
        for item in self.measurements:
            row = QTreeWidgetItem([item.name, item.plane, str(item.slice_index + 1), item.value_text()])
            row.setToolTip(3, item.value_text())
            row.setData(0, Qt.UserRole, item.id)
            self.tree.addTopLevelItem(row)
        for plane in self.workspace.views:
            self.draw(plane)
        if event == "cleared" or (event == "removed" and not len(self.measurements)):
            self.workspace.measure_label.setText("")

    # -- user actions -----------------------------------------------------------------------------------
    def delete_selected(self) -> None:
        for row in self.tree.selectedItems():
            self.measurements.remove(int(row.data(0, Qt.UserRole)))

    def _go_to(self, row: QTreeWidgetItem, _column: int = 0) -> None:
        m = self.measurements.get(int(row.data(0, Qt.UserRole)))
        ws = self.workspace
        if m is None or ws.volume is None:
            return
        cursor = list(ws.cursor)
        cursor[PLANE_AXES[m.plane][0]] = m.slice_index
        ws.set_cursor(*cursor)
