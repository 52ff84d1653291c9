"""Export of the radiology workspace's layers: the Export menu, its save dialogs and the writes (in tasks).

DICOM SEG is only offered for an image read from a DICOM series (a SEG must reference its source
images); for any other image the menu item says why and NIfTI is the way out. Save dialogs open beside the
image's source (or in the folder of the last export) with a name made from the image and the layer.
"""
from __future__ import annotations

import re
import weakref
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMenu, QToolButton

FILTERS = {"seg": "DICOM SEG (*.dcm)", "nifti": "NIfTI (*.nii.gz *.nii)", "boxes": "JSON (*.json)"}
SUFFIXES = {"seg": ".dcm", "nifti": ".nii.gz", "boxes": ".json"}
SEG_TEXT = "Label layer as DICOM SEG…"


def seg_refusal(volume) -> str | None:
    """Why the shown image cannot carry a DICOM SEG, or None when it can."""
    if volume is None:
        return "Open a DICOM series first"
    if getattr(volume, "series", None) is None or not volume.series.slices or volume.source_geometry is None:
        source = getattr(volume, "source_path", None)
        what = f"{Path(source).name} is not a DICOM series" if source else "this image is not a DICOM series"
        return f"DICOM SEG needs a DICOM series as its source: {what}. Export the label layer as NIfTI instead."
    return None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem or name


def default_export_path(what: str, volume, layer_name: str = "", last_dir: Path | None = None) -> Path:
    """Where a save dialog opens: the last export folder, else beside the image's source (a series folder's
    parent, a file's folder), named after the image and the layer (no file system access)."""
    source = getattr(volume, "source_path", None)
    series = getattr(volume, "series", None)
    if source is None:
        folder, base = Path.home(), "image"
    else:
        source = Path(source)
        is_folder = series is not None and len(series.files) > 1
        folder, base = source.parent, source.name if is_folder else _stem(source)
    part = "boxes" if what == "boxes" else (layer_name or "labels")
    name = re.sub(r"[^\w.-]+", "_", f"{base}-{part}").strip("_.") or "export"
    return (last_dir or folder) / f"{name}{'-seg' if what == 'seg' else ''}{SUFFIXES[what]}"


class ExportActions:
    """Mixed into the workspace: ``export_seg``/``export_labels``/``export_boxes`` and the Export button."""

    _last_export_dir: Path | None = None

    def _build_export_button(self) -> QToolButton:
        export = QToolButton()
        export.setText("Export")
        export.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(export)
        self.export_seg_action = menu.addAction(SEG_TEXT, lambda: self._export_dialog("seg"))
        menu.addAction("Label layer as NIfTI…", lambda: self._export_dialog("nifti"))
        menu.addAction("Boxes as JSON (patient mm)…", lambda: self._export_dialog("boxes"))
        menu.setToolTipsVisible(True)
        menu.aboutToShow.connect(self._update_export_menu)
        export.setMenu(menu)
        self.export_menu = menu
        return export

    def _update_export_menu(self) -> None:
        why = seg_refusal(self.volume)
        action = self.export_seg_action
        action.setEnabled(why is None)
        action.setText(SEG_TEXT if why is None else "Label layer as DICOM SEG (needs a DICOM series)")
        action.setToolTip(why or "A DICOM Segmentation that references the source series")

    def _export_dialog(self, what: str) -> None:
        layer = self.current_layer() if what != "boxes" else None
        start = default_export_path(what, self.volume, layer.name if layer is not None else "",
                                    self._last_export_dir)
        path, _ = QFileDialog.getSaveFileName(self, "Export", str(start), FILTERS[what])
        if path:
            self._last_export_dir = Path(path).parent
            {"seg": self.export_seg, "nifti": self.export_labels, "boxes": self.export_boxes}[what](Path(path))

    def _export_layer(self):
        from engines.radiology.overlays import LabelMap

        layer = self.current_layer()
        if layer is None or self.volume is None:
            self.context.notify("warning", "No label layer to export.", "")
            return None
        return LabelMap(layer.labels, self.volume.geometry, dict(layer.names), dict(layer.colours), layer.name)

    def export_seg(self, path: Path):
        """Write the current label layer as DICOM SEG referencing the source series (off the GUI thread)."""
        from engines.radiology.overlays import write_seg

        why = seg_refusal(self.volume)
        if why is not None:
            self.context.notify("warning", f"{Path(path).name} not written: {why}", "")
            return None
        label_map = self._export_layer()
        if label_map is None:
            return None
        volume = self.volume
        return self._submit_export(lambda p, c: write_seg(label_map, volume, path, algorithm=label_map.source),
                                   path, lambda out: out)

    def export_labels(self, path: Path):
        """Write the current label layer as NIfTI with its names beside it (off the GUI thread)."""
        from engines.radiology.overlays import write_label_file

        label_map = self._export_layer()
        if label_map is None:
            return None
        return self._submit_export(lambda p, c: write_label_file(label_map, path), path, lambda out: out[0])

    def _submit_export(self, job, path: Path, written):
        layer = weakref.ref(self.current_layer())  # a finished Task may be kept: it must not hold the layer

        def done(out) -> None:
            if layer() is not None:
                self.session.mark_exported(layer())
            self.context.notify("info", f"Saved {written(out)}", "")

        return self.context.tasks.submit(job, title=f"Exporting {Path(path).name}",
                                         owner=f"{self.manifest.id}:export", on_result=done, on_error=self._error)

    def export_boxes(self, path: Path):
        from engines.radiology.overlays import write_boxes_json

        boxes = [b for layer in self.box_layers for b in layer.boxes if b.score >= layer.threshold]
        meta = dict(self.volume.meta) if self.volume is not None else {}
        return self.context.tasks.submit(lambda p, c: write_boxes_json(boxes, path, meta),
                                         title=f"Exporting {Path(path).name}", owner=f"{self.manifest.id}:export",
                                         on_result=lambda out: self.context.notify("info", f"Saved {out}", ""),
                                         on_error=self._error)
