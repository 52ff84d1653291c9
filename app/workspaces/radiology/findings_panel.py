"""The Review tab: a detector's findings, reviewed one by one, exported as DICOM SR (+ SEG).

It draws an ``engines.radiology.findings.FindingsReview`` and forwards the user's actions to it: the list
(type, score, size, volume, mean HU, slice, state), a score threshold slider, keyboard review (N / P or the
arrow keys: next / previous, A: accept, R: reject, U: back to unreviewed, Ctrl+Z / Ctrl+Shift+Z: undo / redo),
and Export SR… / Export SEG…, written by a worker task. Choosing a finding moves the workspace's cursor to it.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QPushButton, QSlider, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from engines.radiology.findings import FindingsReview

if TYPE_CHECKING:
    from app.workspaces.radiology.view import RadiologyWorkspace

COLUMNS = ["ID", "Type", "Score", "State", "Size (mm)", "Volume (ml)", "Mean HU", "Slice"]
STATE_MARK = {"unreviewed": "·", "accepted": "✓ accepted", "rejected": "✗ rejected"}


class FindingsPanel(QWidget):
    """The review list bound to one :class:`FindingsReview` (``self.review``)."""

    def __init__(self, workspace: "RadiologyWorkspace | None" = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.review = FindingsReview()
        self.review.subscribe(self._changed)
        self.source = None  # the Volume the findings were made on (SR/SEG reference it)
        self.engine = ""
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.currentItemChanged.connect(self._item_changed)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setValue(50)
        self.slider.setToolTip("Show findings with a score at or above this threshold")
        self.slider.valueChanged.connect(lambda v: self.review.set_threshold(v / 100))
        self.threshold_label = QLabel("0.50")
        self.summary = QLabel("No findings: run a detector on this study.")
        self.summary.setWordWrap(True)
        buttons = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for name, tip, slot in (("Previous", "P / Up", self.review.previous), ("Next", "N / Down", self.review.next),
                                ("Accept", "A", self.review.accept), ("Reject", "R", self.review.reject),
                                ("Undo", "Ctrl+Z", self.review.undo)):
            b = QPushButton(name)
            b.setToolTip(tip)
            b.clicked.connect(lambda _c=False, s=slot: s())
            buttons.addWidget(b)
            self.buttons[name] = b
        export = QHBoxLayout()
        self.export_sr_button = QPushButton("Export SR…")
        self.export_sr_button.setToolTip("DICOM SR measurement report (TID 1500) with every finding and its "
                                         "review state; the masks as DICOM SEG beside it")
        self.export_sr_button.clicked.connect(lambda: self.export_sr(None))
        self.export_seg_button = QPushButton("Export SEG…")
        self.export_seg_button.clicked.connect(lambda: self.export_seg(None))
        export.addWidget(self.export_sr_button)
        export.addWidget(self.export_seg_button)
        row = QHBoxLayout()
        row.addWidget(QLabel("Score ≥"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.threshold_label)
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addLayout(row)
        lay.addWidget(self.tree, 1)
        lay.addLayout(buttons)
        lay.addLayout(export)
        keys = {("N", "Down"): self.review.next, ("P", "Up"): self.review.previous, ("A",): self.review.accept,
                ("R",): self.review.reject, ("U",): self.review.reset, ("Ctrl+Z",): self.review.undo,
                ("Ctrl+Shift+Z",): self.review.redo}
        self._shortcuts = []
        for seqs, slot in keys.items():
            for seq in seqs:
                sc = QShortcut(QKeySequence(seq), self, context=Qt.WidgetWithChildrenShortcut)
                sc.activated.connect(slot)
                self._shortcuts.append(sc)
        self._refresh()

    # -- input ---------------------------------------------------------------------------------------
    def set_result(self, result: Mapping[str, Any], title: str = "") -> None:
        """Take a detector result (``findings``, ``source``/``volume``, ``threshold``) for review."""
        self.source = result.get("source") or result.get("volume")
        self.engine = str(result.get("engine") or title)
        self.slider.blockSignals(True)
        self.slider.setValue(int(round(float(result.get("threshold", 0.5)) * 100)))
        self.slider.blockSignals(False)
        self.review.set_threshold(self.slider.value() / 100)
        self.review.set_findings(result.get("findings") or [])

    def clear(self) -> None:
        self.source = None
        self.review.set_findings([])

    # -- model -> view -------------------------------------------------------------------------------
    def _changed(self, what: str, detail: Any) -> None:
        if what == "current":
            self._select_current()
            self._go_to_current()
        else:
            self._refresh()

    def _refresh(self) -> None:
        self.threshold_label.setText(f"{self.review.threshold:.2f}")
        self.tree.blockSignals(True)
        self.tree.clear()
        for f in self.review.visible:
            size = "×".join(f"{v:.0f}" for v in f.size_mm)
            item = QTreeWidgetItem([f.id, f.type, f"{f.score:.2f}", STATE_MARK.get(f.state, f.state), size,
                                    f"{f.volume_ml:.2f}", "" if f.mean_hu is None else f"{f.mean_hu:.0f}",
                                    "" if f.slice_index is None else str(f.slice_index + 1)])
            item.setData(0, Qt.UserRole, f.id)
            self.tree.addTopLevelItem(item)
        self.tree.blockSignals(False)
        self._select_current()
        n_all = len(self.review.findings)
        c = self.review.counts()
        if n_all:
            self.summary.setText(f"{len(self.review.visible)} of {n_all} findings at score ≥ "
                                 f"{self.review.threshold:.2f}: {c['accepted']} accepted, {c['rejected']} rejected, "
                                 f"{c['unreviewed']} to review ({self.engine}). Research use only.")
        else:
            self.summary.setText("No findings: run a detector on this study.")
        has = bool(n_all) and self.source is not None
        self.export_sr_button.setEnabled(has)
        self.export_seg_button.setEnabled(has and any(f.mask is not None for f in self.review.findings))
        self.buttons["Undo"].setEnabled(self.review.can_undo)

    def _select_current(self) -> None:
        cur = self.review.current
        self.tree.blockSignals(True)
        for n in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(n)
            if cur is not None and item.data(0, Qt.UserRole) == cur.id:
                self.tree.setCurrentItem(item)
                break
        self.tree.blockSignals(False)

    def _item_changed(self, item: QTreeWidgetItem | None, _old=None) -> None:
        if item is not None:
            self.review.select(str(item.data(0, Qt.UserRole)))

    def _go_to_current(self) -> None:
        f = self.review.current
        ws = self.workspace
        if f is None or ws is None or getattr(ws, "volume", None) is None:
            return
        i, j, k = np.rint(ws.volume.geometry.lps_to_index(f.centre)).astype(int)
        shape = ws.volume.shape
        ws.set_cursor(int(np.clip(i, 0, shape[2] - 1)), int(np.clip(j, 0, shape[1] - 1)),
                      int(np.clip(k, 0, shape[0] - 1)))

    # -- export (a worker writes; the GUI thread only asks for the name) ------------------------------
    def _ask(self, title: str, suffix: str) -> str:
        base = Path(getattr(self.source, "source_path", None) or Path.home() / "findings")
        default = str(base.parent / f"{base.stem or 'findings'}-{suffix}")
        path, _ = QFileDialog.getSaveFileName(self, title, default, "DICOM (*.dcm)")
        return path

    def export_sr(self, path: str | None) -> Any:
        from engines.radiology.sr import write_findings_sr

        path = path or self._ask("Export findings as DICOM SR", "findings-sr.dcm")
        if not path:
            return None
        findings, source, engine = self.review.findings, self.source, self.engine
        return self._submit(lambda p, c: write_findings_sr(findings, source, Path(path), algorithm=engine or
                                                           "CSI Workstation"), path)

    def export_seg(self, path: str | None) -> Any:
        from engines.radiology.sr import write_findings_seg

        path = path or self._ask("Export finding masks as DICOM SEG", "findings-seg.dcm")
        if not path:
            return None
        findings, source, engine = self.review.findings, self.source, self.engine
        return self._submit(lambda p, c: [write_findings_seg(findings, source, Path(path), algorithm=engine or
                                                             "CSI Workstation")], path)

    def _submit(self, job, path: str):
        ws = self.workspace
        if ws is None:
            return job(None, None)
        notify = ws.context.notify
        return ws.context.tasks.submit(
            job, title=f"Exporting {Path(path).name}",
            on_result=lambda paths: notify("info", "Findings written: " + ", ".join(Path(p).name for p in paths), ""),
            on_error=lambda msg, detail: notify("error", f"{Path(path).name}: {msg}", detail))
