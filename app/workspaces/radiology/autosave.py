"""Autosave of the radiology workspace's label edits on the shared service (engines/core/autosave.py).

The session says what to keep (``autosave_snapshot``: every layer with unexported edits) and where
(``autosave_file``: the shared keying rule); this wiring debounces (1 s after the last stroke), compresses and
writes in a worker task through one ``AutosaveWriter``, and restores a study's autosave in a worker when it
opens. The findings review is kept in the same autosave (a review change asks for a write through
``session.autosave_requested``) and comes back with it: the Review list, its states, boxes and masks. At
shutdown the last snapshot is written before the window closes.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer

from engines.core.autosave import AutosaveWriter
from engines.radiology.label_autosave import legacy_autosave_folder, load_autosave_contents, write_autosave

if TYPE_CHECKING:
    from app.workspaces.radiology.view import RadiologyWorkspace

log = logging.getLogger(__name__)


class LabelAutosave:
    """Debounced, off-the-GUI-thread autosave and restore of one workspace's label edits."""

    def __init__(self, workspace: "RadiologyWorkspace", delay_ms: int = 1000) -> None:
        self.ws = workspace
        self.session = workspace.session
        self.writer = AutosaveWriter()
        self.timer = QTimer(workspace)
        self.timer.setSingleShot(True)
        self.timer.setInterval(delay_ms)
        self.timer.timeout.connect(self.save_now)
        self.session.autosave_requested.connect(self.schedule)

    def schedule(self) -> None:
        self.timer.start()

    def save_now(self):
        """Write what changed since the last autosave, in a task; returns it (None when there is nothing)."""
        self.timer.stop()
        snapshot = self.session.autosave_snapshot()
        if snapshot is None:
            return None
        writer = self.writer

        def job(progress, cancel):
            before = len(writer.errors)
            path = write_autosave(writer, snapshot)
            failed = writer.errors[before:]
            if failed:
                raise OSError(failed[-1])
            return path

        ws = self.ws
        return ws.context.tasks.submit(job, title="Autosaving label edits", owner=f"{ws.manifest.id}:autosave",
                                       on_error=ws._error)

    def flush_before_change(self) -> None:
        """Another study is about to open: queue the pending edits of this one (written in a task)."""
        if self.timer.isActive() or self.session.autosave_due():
            self.save_now()

    def restore(self) -> None:
        """Read the open study's autosave (in a worker) and add its layers."""
        session, ws = self.session, self.ws
        volume = session.volume
        path = session.autosave_file()
        legacy = legacy_autosave_folder(volume)  # what versions before the shared service wrote
        if path is None or not (path.exists() or (legacy is not None and legacy.is_dir())):
            return
        target = (volume.geometry, volume.shape)
        title = session.series_title()

        def job(progress, cancel):
            return load_autosave_contents(path, *target, source_name=title, legacy_folder=legacy)

        def done(contents) -> None:
            if session.volume is not volume:
                return
            for notice in contents.notices:
                ws.context.notify("warning", notice, "")
            maps = contents.layers
            if maps:
                session.restore_layers(maps)
                ws.context.notify("info", f"Restored {len(maps)} label layer(s) with your unsaved corrections "
                                          f"(autosaved in {path})", "")
            if contents.review is not None and not session.review.findings:  # not over a review begun since
                self._restore_review(contents.review)

        ws.context.tasks.submit(job, title="Restoring autosaved label edits", owner=f"{ws.manifest.id}:restore",
                                on_result=done, on_error=ws._error)

    def _restore_review(self, restored) -> None:
        session, ws = self.session, self.ws
        session.restore_review(restored)
        panel = getattr(ws, "findings_panel", None)
        if panel is not None:
            panel.show_restored(session.volume, restored.engine)
        c = session.review.counts()
        edited = session.review.edited_count()
        ws.context.notify("info", f"Restored the review of {len(restored.findings)} finding(s) from the autosave "
                                  f"({c['accepted']} accepted, {c['rejected']} rejected, {c['unreviewed']} to review"
                                  f"{f', {edited} edited' if edited else ''})", "")

    def shutdown(self) -> None:
        """The window closes: write the last edits now (tasks are being cancelled) and stop the writer."""
        self.timer.stop()
        snapshot = self.session.autosave_snapshot(force=True)  # an autosave task may be cancelled unstarted
        try:
            if snapshot is not None:
                write_autosave(self.writer, snapshot, wait=False)
        except (OSError, RuntimeError, ValueError) as exc:
            log.warning("could not autosave label edits at shutdown: %s", exc)
        if not self.writer.close(timeout=10.0):
            log.warning("the label autosave did not finish writing within 10 s")
