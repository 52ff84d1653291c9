"""The Layers tab, bound to the session: label layers (visibility, opacity, outline), the label list (each label
with its voxel count, volume and mean ± SD, computed off the GUI thread by ``engines.radiology.labelstats``; a
double-click puts the crosshair on the label), detections (score threshold, list, jump) and the comparison."""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QSlider,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from engines.radiology.layers import LabelLayer

if TYPE_CHECKING:
    from app.workspaces.radiology.view import RadiologyWorkspace

NO_COMPARISON = "No comparison image (run an image-to-image engine)."

COLUMNS = ["Label", "Value", "Voxels", "ml", "Mean ± SD"]


def setup_label_tree(tree: QTreeWidget) -> None:
    tree.setHeaderLabels(COLUMNS)
    tree.setRootIsDecorated(False)
    tree.setColumnHidden(1, True)  # the label value is in each row's tooltip: the numbers a reader needs must fit
    tree.header().setMinimumSectionSize(24)
    tree.setColumnWidth(0, 100)
    tree.setToolTip("Double-click a label to go to its centre (of its largest connected part)")


def fill_label_tree(tree: QTreeWidget, layer: "LabelLayer | None", unit: str) -> None:
    """Rows for ``layer``'s labels (statistics once they are computed); signals stay blocked while filling."""
    tree.blockSignals(True)
    tree.clear()
    if layer is not None:
        stats = layer.stats or {}
        for value, name in sorted(layer.names.items()):
            s = stats.get(value)
            if s is None:
                numbers = ["…", "…", "…"] if layer.stats is None else ["0", "0", "—"]
            else:
                spread = "—" if s.mean is None else f"{s.mean:.1f} ± {s.sd:.1f}{(' ' + unit) if unit else ''}"
                numbers = [str(s.voxels), f"{s.volume_ml:.2f}", spread]
            item = QTreeWidgetItem([name, str(value), *numbers])
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(0, Qt.Unchecked if value in layer.hidden_labels else Qt.Checked)
            pix = QPixmap(14, 14)
            pix.fill(QColor(*layer.colours.get(value, (255, 255, 255))))
            item.setIcon(0, QIcon(pix))
            item.setData(0, Qt.UserRole, value)
            for column in (2, 3, 4):
                item.setTextAlignment(column, Qt.AlignRight | Qt.AlignVCenter)
            tip = f"{name} (value {value})"
            if s is not None:
                tip += f": {numbers[0]} voxels, {numbers[1]} ml, mean ± SD {numbers[2]}"
            for column in range(len(COLUMNS)):
                item.setToolTip(column, tip + "; double-click to go to it")
            tree.addTopLevelItem(item)
        for column in (2, 3, 4):
            tree.resizeColumnToContents(column)
    tree.blockSignals(False)


class LabelStatistics:
    """Runs the statistics of a layer through the TaskManager and shows them when they arrive."""

    def __init__(self, workspace: "RadiologyWorkspace") -> None:
        self.ws = workspace

    def compute(self, layer: "LabelLayer"):
        from engines.radiology.labelstats import label_statistics

        ws = self.ws
        volume = ws.volume
        if volume is None:
            return None
        labels, stored, spacing = layer.labels, volume.voxels, volume.geometry.spacing
        slope, intercept = volume.slope, volume.intercept

        def job(progress, cancel):
            return label_statistics(labels, spacing, stored, slope, intercept, cancel=cancel, progress=progress)

        # the finished Task may be kept (the Tasks panel): it must not keep the layer or the volume alive
        layer_ref, volume_ref = weakref.ref(layer), weakref.ref(volume)

        def done(stats) -> None:
            shown, volume = layer_ref(), volume_ref()
            if shown is None or shown not in ws.layers or volume is None or ws.volume is not volume:
                return
            shown.stats = stats
            if ws.current_layer() is shown:
                fill_label_tree(ws.label_tree, shown, volume.unit())

        return ws.context.tasks.submit(job, title=f"Label statistics of {layer.name}",
                                       owner=f"{ws.manifest.id}:labelstats:{id(layer)}", on_result=done,
                                       on_error=ws._error)

    def jump(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        """Put the crosshair on the centre of the label's largest connected component."""
        ws = self.ws
        layer = ws.current_layer()
        if layer is None or ws.volume is None:
            return
        value = int(item.data(0, Qt.UserRole))
        if layer.stats is None:
            ws.context.notify("info", f"{layer.name}: the label statistics are still being computed", "")
            return
        stat = layer.stats.get(value)
        if stat is None:
            ws.context.notify("info", f"{layer.name}: label '{layer.names.get(value, value)}' has no voxels", "")
            return
        ws.set_cursor(*stat.centre_ijk)


def _slider(value: int, slot) -> QSlider:
    slider = QSlider(Qt.Horizontal)
    slider.setRange(0, 100)
    slider.setValue(value)
    slider.valueChanged.connect(slot)
    return slider


class LayersPanel(QWidget):
    """Label layers, their labels, detections and the comparison image of the session."""

    def __init__(self, workspace: "RadiologyWorkspace", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.session = workspace.session
        lay = QVBoxLayout(self)
        self.layer_list = QListWidget()
        self.layer_list.itemChanged.connect(self._layer_item_changed)
        self.layer_list.currentRowChanged.connect(self._layer_selected)
        lay.addWidget(QLabel("Label layers"))
        lay.addWidget(self.layer_list, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity"))
        self.opacity = _slider(45, self._opacity_changed)
        row.addWidget(self.opacity)
        self.outline_box = QCheckBox("Outline")
        self.outline_box.toggled.connect(self._outline_changed)
        row.addWidget(self.outline_box)
        lay.addLayout(row)
        self.label_tree = QTreeWidget()
        setup_label_tree(self.label_tree)
        self.label_tree.itemChanged.connect(self._label_item_changed)
        lay.addWidget(self.label_tree, 1)
        lay.addWidget(QLabel("Detections"))
        trow = QHBoxLayout()
        trow.addWidget(QLabel("Score ≥"))
        self.threshold = _slider(50, self._threshold_changed)
        self.threshold_label = QLabel("0.50")
        trow.addWidget(self.threshold)
        trow.addWidget(self.threshold_label)
        lay.addLayout(trow)
        self.box_list = QListWidget()
        self.box_list.itemActivated.connect(self.box_activated)
        self.box_list.itemDoubleClicked.connect(self.box_activated)
        lay.addWidget(self.box_list, 1)
        lay.addWidget(QLabel("Comparison"))
        crow = QHBoxLayout()
        self.compare_box = QComboBox()
        self.compare_box.addItems(["Off", "Swipe", "Flicker", "Difference", "Side by side"])
        self.compare_box.currentTextChanged.connect(self._compare_chosen)
        self.swipe_slider = _slider(50, lambda v: self.session.set_swipe(v / 100))
        crow.addWidget(self.compare_box)
        crow.addWidget(self.swipe_slider)
        lay.addLayout(crow)
        self.compare_label = QLabel(NO_COMPARISON)
        self.compare_label.setWordWrap(True)
        lay.addWidget(self.compare_label)
        self._shown_layers: list = []
        self.session.layers_changed.connect(self.refresh)
        self.session.comparison_changed.connect(self._comparison_changed)
        self.session.compare_mode_changed.connect(self._show_compare_mode)

    # ============================================================================================ label layers
    def refresh(self) -> None:
        """The lists as the session has them (a layer added or restyled, boxes added, a new study)."""
        layers = self.session.layers
        self.layer_list.blockSignals(True)
        self.layer_list.clear()
        for layer in layers:
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if layer.visible else Qt.Unchecked)
            self.layer_list.addItem(item)
        current = self.session.current_layer()
        self.layer_list.setCurrentRow(layers.index(current) if current is not None else -1)
        self.layer_list.blockSignals(False)
        if layers != self._shown_layers or current is None:
            self._shown_layers = list(layers)
            self.show_layer(current)
        self.refresh_boxes()

    def _layer_selected(self, row: int) -> None:
        layers = self.session.layers
        if 0 <= row < len(layers):
            self.session.select_layer(layers[row])
        self.show_layer(self.session.current_layer())

    def show_layer(self, layer: LabelLayer | None) -> None:
        unit = self.session.volume.unit() if self.session.volume is not None else ""
        fill_label_tree(self.label_tree, layer, unit)
        if layer is not None:
            for widget, set_value in ((self.opacity, lambda: self.opacity.setValue(int(layer.opacity * 100))),
                                      (self.outline_box, lambda: self.outline_box.setChecked(layer.outline))):
                widget.blockSignals(True)
                set_value()
                widget.blockSignals(False)

    def _layer_item_changed(self, item: QListWidgetItem) -> None:
        row = self.layer_list.row(item)
        if 0 <= row < len(self.session.layers):
            self.session.set_layer_visible(self.session.layers[row], item.checkState() == Qt.Checked)

    def _label_item_changed(self, item: QTreeWidgetItem, _column: int) -> None:
        layer = self.session.current_layer()
        if layer is not None:
            value = int(item.data(0, Qt.UserRole))
            self.session.set_label_hidden(layer, value, item.checkState(0) != Qt.Checked)

    def _opacity_changed(self, value: int) -> None:
        layer = self.session.current_layer()
        if layer is not None:
            self.session.set_layer_style(layer, opacity=value / 100)

    def _outline_changed(self, on: bool) -> None:
        layer = self.session.current_layer()
        if layer is not None:
            self.session.set_layer_style(layer, outline=on)

    def brush_value(self) -> int:
        """The label the brush paints: the one selected in the label list, else the layer's first label."""
        item = self.label_tree.currentItem()
        if item is not None:
            return int(item.data(0, Qt.UserRole))
        layer = self.session.current_layer()
        return min(layer.names) if layer is not None and layer.names else 1

    # ============================================================================================ detections
    def _threshold_changed(self, value: int) -> None:
        self.threshold_label.setText(f"{value / 100:.2f}")
        self.session.set_box_threshold(value / 100)

    def refresh_boxes(self) -> None:
        self.box_list.clear()
        for layer in self.session.box_layers:
            shown = [b for b in sorted(layer.boxes, key=lambda b: -b.score) if b.score >= layer.threshold]
            if len(shown) > 500:
                self.box_list.addItem(f"{len(shown)} findings above the threshold: the 500 highest are listed")
                shown = shown[:500]
            for box in shown:
                centre = (np.asarray(box.lo_mm) + np.asarray(box.hi_mm)) / 2
                item = QListWidgetItem(f"{box.label}  {box.score:.2f}  at ({centre[0]:.0f}, {centre[1]:.0f}, "
                                       f"{centre[2]:.0f}) mm")
                item.setData(Qt.UserRole, tuple(centre))
                self.box_list.addItem(item)

    def box_activated(self, item: QListWidgetItem) -> None:
        centre = item.data(Qt.UserRole)
        if centre is not None and self.session.volume is not None:
            self.session.go_to_lps(centre)

    # ============================================================================================ comparison
    def _compare_chosen(self, text: str) -> None:
        self.session.set_compare_mode(text)

    def _show_compare_mode(self, mode: str) -> None:
        text = {"side": "Side by side"}.get(mode, mode.capitalize())
        if self.compare_box.currentText() != text:
            self.compare_box.blockSignals(True)
            self.compare_box.setCurrentText(text)
            self.compare_box.blockSignals(False)

    def _comparison_changed(self) -> None:
        c = self.session.comparison
        self.compare_label.setText(NO_COMPARISON if c is None else
                                   f"Comparing with: {c.name}. Swipe, flicker (F), difference or side by side.")
