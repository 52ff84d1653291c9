"""The Review tab: a detector's findings, reviewed one by one, exported as DICOM SR (+ SEG).

It draws an ``engines.radiology.findings.FindingsReview`` (the workspace session's ``review``) and forwards
the user's actions to it: the list (type, score, state and whether it was edited, size, volume, mean HU,
slice), a score threshold slider, keyboard review (see ``KEYS_HELP``), editing the current finding's box and
mask in the slice views (E; ``finding_editor``), and Export SR… / Export SEG…, written by a worker task.
Choosing a finding moves the workspace's cursor to it. In the workspace the review keys are the panel's while
it has the focus (they are taken before the workspace's own shortcuts, which use some of the same letters),
and undo/redo go through the session's one history (review steps, box edits and brush strokes). After a
restart the review comes back from the study's autosave as it was left (``show_restored``).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QPushButton, QSlider, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from engines.radiology.findings import FindingsReview, with_masks

if TYPE_CHECKING:
    from app.workspaces.radiology.view import RadiologyWorkspace

COLUMNS = ["ID", "Type", "Score", "State", "Size (mm)", "Volume (ml)", "Mean HU", "Slice"]
STATE_MARK = {"unreviewed": "·", "accepted": "✓ accepted", "rejected": "✗ rejected"}
KEYS_HELP = ("Keys (Review list focused): N / ↓ next · P / ↑ previous · A accept · R reject · U back to unreviewed · "
             "E edit the box (drag its handles in any view) and mask (Brush / Eraser paint the finding's own "
             "mask) · Ctrl+Z / Ctrl+Shift+Z undo / redo (states, boxes and strokes)")


def state_text(finding) -> str:
    """The State column: the review state, and 'edited' when the reviewer changed the box or mask."""
    mark = STATE_MARK.get(finding.state, finding.state)
    if not finding.edited:
        return mark
    return "edited" if finding.state == "unreviewed" else f"{mark} · edited"


class FindingsPanel(QWidget):
    """The review list bound to one :class:`FindingsReview` (``self.review``)."""

    def __init__(self, workspace: "RadiologyWorkspace | None" = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.session = getattr(workspace, "session", None)
        self.review = self.session.review if self.session is not None else FindingsReview()
        self.review.subscribe(self._changed)
        self.source = None  # the Volume the findings were made on (SR/SEG reference it)
        self.engine = ""
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.currentItemChanged.connect(self._item_changed)
        self.tree.itemClicked.connect(self._item_clicked)  # the current row again: go back to its finding
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
                                ("Edit", "E: edit the box (drag its handles) and mask (Brush / Eraser)",
                                 self.toggle_edit), ("Undo", "Ctrl+Z", self.undo)):
            b = QPushButton(name)
            b.setToolTip(tip)
            b.clicked.connect(lambda _c=False, s=slot: s())
            buttons.addWidget(b)
            self.buttons[name] = b
        self.buttons["Edit"].setCheckable(True)
        self.buttons["Edit"].setEnabled(self.session is not None)
        self.help = QLabel(KEYS_HELP)
        self.help.setWordWrap(True)
        self.help.setStyleSheet("color: gray;")
        self.setToolTip(KEYS_HELP)
        self.tree.setToolTip(KEYS_HELP)
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
        self.details = QLabel("")  # the current finding in full: the list's columns do not fit a narrow dock
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextSelectableByMouse)
        lay.addWidget(self.details)
        lay.addLayout(buttons)
        lay.addWidget(self.help)
        lay.addLayout(export)
        self.keys = {"N": self.review.next, "Down": self.review.next, "P": self.review.previous,
                     "Up": self.review.previous, "A": self.review.accept, "R": self.review.reject,
                     "U": self.review.reset, "E": self.toggle_edit, "Ctrl+Z": self.undo, "Ctrl+Shift+Z": self.redo}
        self._key_filter = _ReviewKeys(self)
        for w in (self, self.tree, self.slider, *self.buttons.values()):
            w.installEventFilter(self._key_filter)
        if self.session is not None:
            self.session.finding_edit_changed.connect(lambda _fid: self._show_editing())
            self.session.history_changed.connect(lambda _u, _r: self._show_undo())
        self._refresh()

    # -- actions -------------------------------------------------------------------------------------
    def toggle_edit(self) -> None:
        """Edit the current finding's box and mask in the slice views (again: stop editing)."""
        editor = getattr(self.workspace, "finding_editor", None)
        if editor is not None:
            editor.toggle()
        elif self.session is not None:
            self.session.toggle_finding_edit()
        self._show_editing()

    def undo(self) -> None:
        """Undo the last review step (in the workspace: the last step of its one history)."""
        (self.session.undo if self.session is not None else self.review.undo)()
        self._show_undo()

    def redo(self) -> None:
        (self.session.redo if self.session is not None else self.review.redo)()
        self._show_undo()

    def _show_editing(self) -> None:
        b = self.buttons["Edit"]
        b.blockSignals(True)
        b.setChecked(self.session is not None and self.session.editing is not None)
        b.blockSignals(False)

    def _show_undo(self) -> None:
        owner = self.session if self.session is not None else self.review
        self.buttons["Undo"].setEnabled(owner.can_undo)

    # -- input ---------------------------------------------------------------------------------------
    def set_result(self, result: Mapping[str, Any], title: str = "") -> None:
        """Take a detector result (``findings``, ``source``/``volume``, ``threshold``) for review."""
        self.source = result.get("source") or result.get("volume")
        self.engine = str(result.get("engine") or title)
        self.slider.blockSignals(True)
        self.slider.setValue(int(round(float(result.get("threshold", 0.5)) * 100)))
        self.slider.blockSignals(False)
        if self.session is not None:  # a head CT haemorrhage review starts in the brain window
            self.session.start_review(result.get("findings") or [], threshold=self.slider.value() / 100,
                                      engine=self.engine)
        else:
            self.review.set_threshold(self.slider.value() / 100)
            self.review.set_findings(result.get("findings") or [])

    def show_restored(self, source, engine: str) -> None:
        """The session took a review back from the autosave (after a restart): show it as it was left."""
        self.source = source
        self.engine = str(engine)
        self.slider.blockSignals(True)
        self.slider.setValue(int(round(self.review.threshold * 100)))
        self.slider.blockSignals(False)
        self._refresh()

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
            if what == "findings" and detail == "reset":  # a new result: the cursor goes to its first finding
                self._go_to_current()

    def _refresh(self) -> None:
        self.threshold_label.setText(f"{self.review.threshold:.2f}")
        self.tree.blockSignals(True)
        self.tree.clear()
        for f in self.review.visible:
            size = "×".join(f"{v:.0f}" for v in f.size_mm)
            item = QTreeWidgetItem([f.id, f.type, f"{f.score:.2f}", state_text(f), size,
                                    f"{f.volume_ml:.2f}", "" if f.mean_hu is None else f"{f.mean_hu:.0f}",
                                    "" if f.slice_index is None else str(f.slice_index + 1)])
            item.setData(0, Qt.UserRole, f.id)
            self.tree.addTopLevelItem(item)
        self.tree.blockSignals(False)
        self._select_current()
        n_all = len(self.review.findings)
        c = self.review.counts()
        if n_all:
            edited = self.review.edited_count()
            self.summary.setText(f"{len(self.review.visible)} of {n_all} findings at score ≥ "
                                 f"{self.review.threshold:.2f}: {c['accepted']} accepted, {c['rejected']} rejected, "
                                 f"{c['unreviewed']} to review{f', {edited} edited' if edited else ''} "
                                 f"({self.engine}). Research use only.")
        else:
            self.summary.setText("No findings: run a detector on this study.")
        has = bool(n_all) and self.source is not None
        self.export_sr_button.setEnabled(has)
        self.export_seg_button.setEnabled(has and any(f.mask is not None for f in self.review.findings))
        self._show_undo()
        self._show_editing()

    def _show_details(self) -> None:
        f = self.review.current
        if f is None:
            self.details.setText("")
            return
        parts = [f"<b>{f.id}</b> {f.type}", f"score {f.score:.2f}", state_text(f).strip("·✓✗ ") or "unreviewed",
                 "×".join(f"{v:.0f}" for v in f.size_mm) + " mm", f"{f.volume_ml:.2f} ml"]
        if f.mean_hu is not None:
            parts.append(f"mean {f.mean_hu:.0f} HU")
        if f.slice_index is not None:
            parts.append(f"slice {f.slice_index + 1}")
        self.details.setText(" · ".join(parts))

    def _select_current(self) -> None:
        self._show_details()
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

    def _item_clicked(self, item: QTreeWidgetItem | None, _column: int = 0) -> None:
        cur = self.review.current
        if item is not None and cur is not None and item.data(0, Qt.UserRole) == cur.id:
            self._go_to_current()

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
        findings, masks, source, engine = self._export_snapshot()
        return self._submit(lambda p, c: write_findings_sr(with_masks(findings, masks), source, Path(path),
                                                           algorithm=engine or "CSI Workstation"), path)

    def export_seg(self, path: str | None) -> Any:
        from engines.radiology.sr import write_findings_seg

        path = path or self._ask("Export finding masks as DICOM SEG", "findings-seg.dcm")
        if not path:
            return None
        findings, masks, source, engine = self._export_snapshot()
        return self._submit(lambda p, c: [write_findings_seg(with_masks(findings, masks), source, Path(path),
                                                             algorithm=engine or "CSI Workstation")], path)

    def _export_snapshot(self):
        """The findings as reviewed, the masks being painted (copies) and the source: what a worker exports."""
        masks = self.session.finding_mask_snapshot() if self.session is not None else {}
        return self.review.findings, masks, self.source, self.engine

    def _submit(self, job, path: str):
        ws = self.workspace
        if ws is None:
            return job(None, None)
        notify = ws.context.notify
        return ws.context.tasks.submit(
            job, title=f"Exporting {Path(path).name}",
            on_result=lambda paths: notify("info", "Findings written: " + ", ".join(Path(p).name for p in paths), ""),
            on_error=lambda msg, detail: notify("error", f"{Path(path).name}: {msg}", detail))


class _ReviewKeys(QObject):
    """The review keys while the panel has the focus: claimed before any shortcut of the workspace (which
    uses A, R, Up, Down and Ctrl+Z for other things), then handled on the key press."""

    def __init__(self, panel: FindingsPanel) -> None:
        super().__init__(panel)
        self.panel = panel

    def _slot(self, event):
        try:
            text = QKeySequence(event.keyCombination()).toString(QKeySequence.PortableText)
        except (AttributeError, TypeError):
            return None
        return self.panel.keys.get(text)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind in (QEvent.ShortcutOverride, QEvent.KeyPress):
            slot = self._slot(event)
            if slot is not None:
                event.accept()
                if kind == QEvent.KeyPress:
                    slot()
                return True
        return False
