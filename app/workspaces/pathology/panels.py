"""The side panels of the pathology workspace, each bound to the session: analysis (engine, progress, results),
layers (visibility and style), annotations (class, name, list) and the slide's properties. They show what the
session holds and forward edits to it; none computes."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QListView, QListWidget, QListWidgetItem, QProgressBar, QPushButton, QSlider,
                               QTableWidget, QTableWidgetItem, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

ANNOTATION_CLASSES = ("", "positive", "negative", "tumor", "stroma", "region")
COLORMAPS = ("inferno", "viridis", "magma", "plasma", "cividis")


def _push(text: str, slot, tip: str = "") -> QPushButton:
    b = QPushButton(text)
    b.setToolTip(tip)
    b.clicked.connect(slot)
    return b


def _slider(value: int, slot) -> QSlider:
    """A 0-100 slider (a percentage) that calls ``slot`` when moved."""
    s = QSlider(Qt.Horizontal, minimum=0, maximum=100, value=value)
    s.valueChanged.connect(slot)
    return s


class AnalysisPanel(QWidget):
    """Engine choice, run/cancel, progress, the slide summary and the results export."""

    run_clicked = Signal()
    cancel_clicked = Signal()
    export_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        v = QVBoxLayout(self)
        self.engine_combo = QComboBox()
        self.engine_combo.setToolTip("C4d engines: the CNN, and the plain colour-deconvolution threshold to compare")
        row = QHBoxLayout()
        self.run_button = _push("Run on tissue", self.run_clicked.emit)
        self.cancel_button = _push("Cancel", self.cancel_clicked.emit)
        self.cancel_button.setEnabled(False)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        self.summary_table = QTableWidget(0, 2)
        self.summary_table.setHorizontalHeaderLabels(["Measure", "Value"])
        self.summary_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.summary_table.horizontalHeader().setStretchLastSection(True)
        self.summary_table.verticalHeader().setVisible(False)
        self.summary_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.export_results_button = _push("Export results…", self.export_clicked.emit,
                                           "Write the detections (GeoJSON), the heatmap and the slide summary")
        self.export_results_button.setEnabled(False)
        note = QLabel("<small>Research use only, not for diagnosis. The CNN was trained on one public IHC field "
                      "(see its model card).</small>")
        note.setWordWrap(True)
        v.addWidget(QLabel("Engine"))
        v.addWidget(self.engine_combo)
        v.addLayout(row)
        v.addWidget(self.progress)
        v.addWidget(self.progress_label)
        v.addWidget(QLabel("Slide summary"))
        v.addWidget(self.summary_table, 1)
        v.addWidget(self.export_results_button)
        v.addWidget(note)

    def fill_engines(self, engines) -> None:
        """The registry's pathology engines, the CNN first; a missing weights file is said in the label."""
        self.engine_combo.clear()
        order = {"c4d-cnn": 0, "c4d-deconvolution": 1}
        for e in sorted(engines, key=lambda e: order.get(e.id, 9)):
            status = e.weights_status()
            label = e.info().title + ("" if status in ("ok", "none needed") else "  (weights missing)")
            self.engine_combo.addItem(label, e.id)

    def reset(self) -> None:
        self.summary_table.setRowCount(0)
        self.export_results_button.setEnabled(False)
        self.progress.setValue(0)
        self.progress_label.setText("")

    def started(self, title: str) -> None:
        self.progress.setValue(0)
        self.progress_label.setText(f"Starting {title}…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def show_progress(self, fraction: float, message: str) -> None:
        if fraction >= 0:
            self.progress.setValue(int(round(fraction * 100)))
        self.progress_label.setText(message)

    def finished(self, message: str, can_run: bool) -> None:
        self.run_button.setEnabled(can_run)
        self.cancel_button.setEnabled(False)
        self.progress_label.setText(message)

    def show_summary(self, rows: list[tuple[str, str]]) -> None:
        self.summary_table.setRowCount(len(rows))
        for i, (k, val) in enumerate(rows):
            self.summary_table.setItem(i, 0, QTableWidgetItem(str(k)))
            self.summary_table.setItem(i, 1, QTableWidgetItem(str(val)))
        self.export_results_button.setEnabled(True)
        self.progress.setValue(100)


class LayersPanel(QWidget):
    """The layer list with checkboxes and the heatmap/detection style, bound to ``session.layers``."""

    import_clicked = Signal()

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        v = QVBoxLayout(self)
        self.layer_list = QListWidget()
        self.layer_list.itemChanged.connect(self._toggled)
        v.addWidget(self.layer_list, 1)
        form = QFormLayout()
        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(COLORMAPS)
        self.cmap_combo.currentTextChanged.connect(self._style)
        self.opacity_slider = _slider(35, self._style)
        self.threshold_slider = _slider(20, self._style)
        self.threshold_label = QLabel("0.20")
        trow = QHBoxLayout()
        trow.addWidget(self.threshold_slider, 1)
        trow.addWidget(self.threshold_label)
        self.score_slider = _slider(0, self._style)
        form.addRow("Heatmap colours", self.cmap_combo)
        form.addRow("Heatmap opacity", self.opacity_slider)
        form.addRow("Heatmap threshold", trow)
        form.addRow("Detections: min score", self.score_slider)
        v.addLayout(form)
        v.addWidget(_push("Import GeoJSON (QuPath)…", self.import_clicked.emit))
        self._style()

    def refresh(self) -> None:
        layers = self.session.layers
        self.layer_list.blockSignals(True)
        self.layer_list.clear()
        entries = layers.entries() + [("annotations", 0, f"Annotations ({len(self.session.store)})",
                                       layers.annotations_visible)]
        for kind, i, text, visible in entries:
            item = QListWidgetItem(text)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if visible else Qt.Unchecked)
            item.setData(Qt.UserRole, (kind, i))
            self.layer_list.addItem(item)
        self.layer_list.blockSignals(False)

    def _toggled(self, item: QListWidgetItem) -> None:
        kind, i = item.data(Qt.UserRole)
        self.session.layers.set_visible(kind, i, item.checkState() == Qt.Checked)

    def _style(self, *_args) -> None:
        thr = self.threshold_slider.value() / 100
        self.threshold_label.setText(f"{thr:.2f}")
        self.session.layers.set_style(colormap=self.cmap_combo.currentText(), opacity=self.opacity_slider.value() / 100,
                                      threshold=thr, min_score=self.score_slider.value() / 100)


class AnnotationsPanel(QWidget):
    """Class and name of the selected annotation, the (virtual) list of all, delete/import/export."""

    import_clicked = Signal()
    export_clicked = Signal()

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from app.workspaces.pathology.annotation_model import AnnotationListModel

        self.session = session
        v = QVBoxLayout(self)
        form = QFormLayout()
        self.class_combo = QComboBox()
        self.class_combo.setEditable(True)
        self.class_combo.addItems(ANNOTATION_CLASSES)
        self.class_combo.setToolTip("Class given to new annotations (and to the selected one)")
        self.class_combo.currentTextChanged.connect(lambda cls: session.set_class(session.layers.selected_id, cls))
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("name of the selected annotation")
        self.name_edit.editingFinished.connect(
            lambda: session.rename(session.layers.selected_id, self.name_edit.text()))
        form.addRow("Class", self.class_combo)
        form.addRow("Name", self.name_edit)
        v.addLayout(form)
        self.annotation_model = AnnotationListModel(session.store, lambda: session.meta.mpp if session.meta else None,
                                                    self)
        self.annotation_list = QListView()
        self.annotation_list.setUniformItemSizes(True)  # no per-row size query: a million rows scroll at once
        self.annotation_list.setModel(self.annotation_model)
        self.annotation_list.selectionModel().currentRowChanged.connect(
            lambda cur, _prev: session.centre_on_annotation(cur.row()))
        v.addWidget(self.annotation_list, 1)
        row = QHBoxLayout()
        row.addWidget(_push("Delete", lambda: session.delete(session.layers.selected_id)))
        row.addWidget(_push("Import…", self.import_clicked.emit))
        row.addWidget(_push("Export GeoJSON…", self.export_clicked.emit))
        v.addLayout(row)
        self.autosave_label = QLabel("")
        self.autosave_label.setWordWrap(True)
        v.addWidget(self.autosave_label)

    def refresh(self) -> None:
        self.annotation_model.refresh()
        self.show_selected()

    def show_selected(self) -> None:
        """Select the session's selected annotation in the list (without echoing back) and show its name."""
        store, ann_id = self.session.store, self.session.layers.selected_id
        row = store.index_of(ann_id) if ann_id else -1
        sel = self.annotation_list.selectionModel()
        sel.blockSignals(True)
        if row >= 0:
            index = self.annotation_model.index(row, 0)
            sel.setCurrentIndex(index, sel.SelectionFlag.ClearAndSelect)
            self.annotation_list.scrollTo(index)
        else:
            sel.clear()
        sel.blockSignals(False)
        self.annotation_list.viewport().update()
        self.name_edit.setText(store.row(row).name if row >= 0 else "")


class SlideInfoPanel(QWidget):
    """The slide's properties as a tree, and its associated images (label, macro) as small pictures."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        v = QVBoxLayout(self)
        self.info_tree = QTreeWidget()
        self.info_tree.setHeaderLabels(["Property", "Value"])
        self.info_tree.header().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        v.addWidget(self.info_tree, 1)
        self.associated_row = QHBoxLayout()
        v.addLayout(self.associated_row)

    def show_slide(self, rows, associated: dict) -> None:
        """``rows`` from ``engines.pathology.session.slide_info_rows``; ``associated`` name -> QImage."""
        self.info_tree.clear()
        for key, value, children in rows:
            item = QTreeWidgetItem([key, str(value)])
            self.info_tree.addTopLevelItem(item)
            for k, val in children:
                item.addChild(QTreeWidgetItem([k, str(val)]))
            if key == "Levels":
                item.setExpanded(True)
        while self.associated_row.count():
            item = self.associated_row.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        for name, img in associated.items():
            lab = QLabel()
            lab.setPixmap(QPixmap.fromImage(img).scaled(120, 120, Qt.KeepAspectRatio, Qt.SmoothTransformation))
            lab.setToolTip(name)
            self.associated_row.addWidget(lab)
        self.associated_row.addStretch(1)
