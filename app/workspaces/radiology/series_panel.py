"""The Series, Tags and Findings tabs of the radiology workspace, bound to its session: the study's series with
thumbnails (double-click loads one), the DICOM header of the slice under the crosshair, the reader's findings."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

if TYPE_CHECKING:
    from app.workspaces.radiology.view import RadiologyWorkspace


class SeriesBrowser(QWidget):
    """The study's series (a SEG loads as an overlay, an RT structure set or SR opens as what it is)."""

    def __init__(self, workspace: "RadiologyWorkspace", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.series_list = QListWidget()
        self.series_list.setIconSize(QSize(64, 64))
        self.series_list.itemActivated.connect(self.activated)
        self.series_list.itemDoubleClicked.connect(self.activated)
        self.study_label = QLabel("")
        self.study_label.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.study_label)
        lay.addWidget(self.series_list, 1)
        hint = QLabel("Double-click a series to load it; a SEG loads as an overlay.")
        hint.setWordWrap(True)
        lay.addWidget(hint)

    def fill(self, series_list, thumbs: dict) -> None:
        self.series_list.clear()
        for s in series_list:
            n = len(s.slices) if s.kind == "image" else len(s.files)
            unit = "images" if s.kind == "image" else "objects"
            text = f"{s.title()}\n{s.kind.upper() if s.kind != 'image' else s.modality}, {n} {unit}"
            if s.kind == "image" and s.slices:
                text += f", {s.slices[0].cols}×{s.slices[0].rows}"
            if s.findings:
                text += f"\n⚠ {len(s.findings)} finding(s)"
            item = QListWidgetItem(text)
            item.setData(Qt.UserRole, s.key)
            if s.key in thumbs:
                item.setIcon(QIcon(QPixmap.fromImage(_qimage(thumbs[s.key]))))
            item.setToolTip("\n".join(s.findings) or s.uid)
            self.series_list.addItem(item)

    def show_study(self, volume, title: str) -> None:
        meta = volume.meta
        nk, nj, ni = volume.shape
        self.study_label.setText(
            f"<b>{meta.get('patient_name') or '(no name)'}</b> {meta.get('patient_id', '')}<br>"
            f"{meta.get('study_description', '')} {meta.get('study_date', '')}<br>"
            f"Showing: {title} — {ni}×{nj}×{nk}, "
            f"{' × '.join(f'{s:.3g}' for s in volume.geometry.spacing)} mm, "
            f"{volume.voxels.dtype} ({volume.nbytes / 1e6:.0f} MB)")

    def activated(self, item: QListWidgetItem) -> None:
        ws = self.ws
        scan = ws.session.scan
        if scan is None:
            return
        key = item.data(Qt.UserRole)
        s = next((s for s in scan.series if s.key == key), None)
        if s is None:
            return
        if s.kind == "image":
            ws.load_series(s)
        elif s.kind == "seg":
            ws.load_seg(s.files[0])
        elif (s.kind == "rtstruct" and ws.volume is not None) or s.kind == "sr":
            ws.open_path(s.files[0])
        else:
            ws.context.notify("info", f"{s.title()}: {s.findings[0] if s.findings else s.kind}", "")


class TagPanel(QTreeWidget):
    """The DICOM header of the acquired slice under the crosshair (filled only while the tab is shown)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Tag", "Name", "Value"])
        self.setColumnWidth(0, 90)
        self.setColumnWidth(1, 150)

    def show_slice(self, volume, cursor) -> None:
        i, j, k = cursor
        ref = volume.source_slice_for(k, j, i)
        self.clear()
        if ref is None and volume.series is not None:
            self.addTopLevelItem(QTreeWidgetItem(["", "Slice", "missing from the series (shown blank)"]))
            return
        if ref is None:
            for key, value in volume.geometry.to_dict().items():
                self.addTopLevelItem(QTreeWidgetItem(["", key, str(value)]))
            return
        self.addTopLevelItem(QTreeWidgetItem(["", "File", ref.name]))
        _add_dataset(self.invisibleRootItem(), ref.header, depth=0)


def _qimage(gray: np.ndarray) -> QImage:
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    h, w = gray.shape
    return QImage(gray.data, w, h, w, QImage.Format_Grayscale8).copy()


def _add_dataset(parent, ds, depth: int) -> None:
    for elem in ds:
        if elem.tag == 0x7FE00010:
            continue
        name = elem.name
        if elem.VR == "SQ":
            item = QTreeWidgetItem([f"{elem.tag}", name, f"{len(elem.value)} item(s)"])
            parent.addChild(item)
            if depth < 2:
                for n, sub in enumerate(elem.value[:20]):
                    child = QTreeWidgetItem(["", f"item {n + 1}", ""])
                    item.addChild(child)
                    _add_dataset(child, sub, depth + 1)
            continue
        value = elem.repval if elem.VR in ("OB", "OW", "UN", "OF", "OD", "OL", "OV") else str(elem.value)
        parent.addChild(QTreeWidgetItem([f"{elem.tag}", name, value[:200]]))
