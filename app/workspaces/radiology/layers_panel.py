"""The label list of the Layers tab: each label with its voxel count, volume and mean ± SD (computed off the
GUI thread by ``engines.radiology.labelstats``); a double-click puts the crosshair on the label."""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

if TYPE_CHECKING:
    from app.workspaces.radiology.view import LabelLayer, RadiologyWorkspace

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
