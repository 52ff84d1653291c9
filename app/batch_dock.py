"""The Batch dock: run one engine over a folder of studies, slides or recordings, watch each input, cancel,
and open any result in its workspace. The work is engines.core.batch.run_batch (Dask) in a task; this widget
only draws the rows that the task reports."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton,
                               QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app.worker import TaskManager

COLUMNS = ("Input", "Status", "Seconds", "Result or reason")


class _Rows(QObject):
    """Carries finished inputs from the batch thread to the GUI thread (queued signal)."""

    item = Signal(object, int, int)


class BatchPanel(QWidget):
    """Engine + inputs + output folder -> a table with one row per input."""

    def __init__(self, tasks: TaskManager, engines: Callable[[], list[tuple[str, str]]],
                 open_path: Callable[[Path], None], notify: Callable[[str, str, str], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tasks, self._engines, self._open_path, self._notify = tasks, engines, open_path, notify
        self._task = None
        self._row_of: dict[str, int] = {}
        self._rows = _Rows(self)
        self._rows.item.connect(self._item_done)

        self.engine_box = QComboBox()
        self.engine_box.setToolTip("The engine to run on every input")
        self.inputs_edit = QLineEdit()
        self.inputs_edit.setPlaceholderText("Folder of studies, slides or recordings")
        browse_in = QPushButton("Inputs…")
        browse_in.clicked.connect(self._choose_inputs)
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("Output folder")
        browse_out = QPushButton("Output…")
        browse_out.clicked.connect(self._choose_out)
        self.workers = QSpinBox()
        self.workers.setRange(1, 64)
        self.workers.setValue(1)
        self.workers.setToolTip("Worker processes on this machine (each loads the model once)")
        self.scheduler_edit = QLineEdit()
        self.scheduler_edit.setPlaceholderText("Dask scheduler (optional), e.g. tcp://host:8786")
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button = QPushButton("Open result")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self.open_selected)
        self.status = QLabel("Choose an engine, the inputs and an output folder.")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.Stretch)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.itemDoubleClicked.connect(lambda _item: self.open_selected())

        top = QHBoxLayout()
        for w in (self.engine_box, self.inputs_edit, browse_in, self.out_edit, browse_out):
            top.addWidget(w)
        second = QHBoxLayout()
        second.addWidget(QLabel("Workers"))
        for w in (self.workers, self.scheduler_edit, self.start_button, self.cancel_button, self.open_button):
            second.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(second)
        layout.addWidget(self.status)
        layout.addWidget(self.table)
        self.refresh_engines()

    # -- setup -------------------------------------------------------------------------------------
    def refresh_engines(self) -> None:
        current = self.engine_box.currentData()
        self.engine_box.clear()
        for engine_id, title in self._engines():
            self.engine_box.addItem(title, engine_id)
        if current is not None:
            index = self.engine_box.findData(current)
            if index >= 0:
                self.engine_box.setCurrentIndex(index)

    def _choose_inputs(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of inputs", self.inputs_edit.text() or "")
        if folder:
            self.inputs_edit.setText(folder)
            if not self.out_edit.text():
                self.out_edit.setText(str(Path(folder).parent / f"{Path(folder).name}-results"))

    def _choose_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.out_edit.text() or "")
        if folder:
            self.out_edit.setText(folder)

    def set_inputs(self, paths: list[Path]) -> None:
        """Inputs chosen elsewhere (e.g. the studies of the series browser)."""
        self.inputs_edit.setText(";".join(str(p) for p in paths))

    # -- running -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._task is not None and self._task.active

    def start(self) -> None:
        engine_id = self.engine_box.currentData()
        inputs = [Path(p.strip()) for p in self.inputs_edit.text().split(";") if p.strip()]
        out = self.out_edit.text().strip()
        if not engine_id or not inputs or not out:
            self.status.setText("Choose an engine, the inputs and an output folder first.")
            return
        scheduler = self.scheduler_edit.text().strip() or None
        workers = self.workers.value()
        self.table.setRowCount(0)
        self._row_of.clear()
        rows = self._rows

        def job(progress, cancel):
            from engines.core.batch import run_batch

            def one(item, finished, total):
                rows.item.emit(item, finished, total)
                progress(finished / max(total, 1), f"{finished}/{total}: {Path(item.input).name} {item.status}")

            return run_batch(engine_id, inputs, out, scheduler=scheduler, workers=workers, progress=one,
                             cancel=cancel)

        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Running {self.engine_box.currentText()} on {', '.join(p.name for p in inputs)}…")
        self._task = self.tasks.submit(job, title=f"Batch: {self.engine_box.currentText()}", owner="batch",
                                       on_result=self._finished, on_error=self._failed)
        self._task.cancelled.connect(self._was_cancelled)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.status.setText("Cancelling: inputs already running finish, the rest are not started…")

    def _item_done(self, item, finished: int, total: int) -> None:
        row = self._row_of.get(item.input)
        if row is None:
            row = self.table.rowCount()
            self.table.insertRow(row)
            self._row_of[item.input] = row
        warned = [c for c in item.checks if c.get("status") != "passed"]
        detail = item.reason if item.status == "failed" else ", ".join(Path(o).name for o in item.outputs)
        if warned:
            detail = f"warning: {warned[0]['name']}: {warned[0]['reason']} — {detail}"
        values = (Path(item.input).name, item.status, f"{item.seconds:.1f}", detail)
        for col, value in enumerate(values):
            cell = QTableWidgetItem(value)
            if col == 0:
                cell.setData(Qt.UserRole, item.outputs[0] if item.outputs else "")
                cell.setToolTip(item.input)
            if col == 3:
                cell.setToolTip(detail)
            self.table.setItem(row, col, cell)
        self.status.setText(f"{finished} of {total} inputs finished")

    def _finished(self, summary) -> None:
        self._idle()
        text = (f"{summary.engine}: {summary.count('done')} done, {summary.count('skipped')} skipped (already "
                f"done), {summary.count('failed')} failed on {summary.scheduler}; summary in {summary.out_dir}")
        self.status.setText(text)
        if summary.failed:
            self._notify("warning", f"Batch: {summary.count('failed')} input(s) failed; see the Batch table.",
                         "\n".join(f"{i.input}: {i.reason}" for i in summary.failed))

    def _failed(self, message: str, detail: str) -> None:
        self._idle()
        self.status.setText(message)
        self._notify("error", message, detail)

    def _was_cancelled(self) -> None:
        self._idle()
        self.status.setText("Batch cancelled; finished inputs keep their results and a re-run skips them.")

    def _idle(self) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self._task = None

    # -- results -----------------------------------------------------------------------------------
    def _selected_output(self) -> str:
        rows = {i.row() for i in self.table.selectedIndexes()}
        if len(rows) != 1:
            return ""
        cell = self.table.item(rows.pop(), 0)
        return str(cell.data(Qt.UserRole) or "") if cell else ""

    def _selection_changed(self) -> None:
        self.open_button.setEnabled(bool(self._selected_output()))

    def open_selected(self) -> None:
        output = self._selected_output()
        if output:
            self._open_path(Path(output))
