"""The Qt shell: workspaces, the worker adapter, notifications, drag-and-drop routing, settings."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pydicom.data import get_testdata_file
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app.main_window import MainWindow
from app.settings import Settings
from app.worker import Task, TaskManager
from app.workspaces.manifest import discover_workspaces, workspace_for_kind
from engines.core.engine import Engine, EngineError, EngineInfo


def test_four_workspaces_are_discovered_from_entry_points():
    manifests, errors = discover_workspaces()
    assert errors == {}
    assert [m.id for m in manifests] == ["radiology", "pathology", "music", "textvqa"]
    assert workspace_for_kind("dicom-folder", manifests).id == "radiology"
    assert workspace_for_kind("slide", manifests).id == "pathology"
    assert workspace_for_kind("audio", manifests).id == "music"
    assert workspace_for_kind("image", manifests).id == "textvqa"  # plain images: VQA before ImageSlide
    assert workspace_for_kind("weights", manifests) is None


def test_views_are_created_lazily_and_switching_works(window, qtbot):
    assert window.views == {}
    view = window.switch_to("music")
    assert set(window.views) == {"music"}
    assert window.stack.currentWidget() is view
    assert window.current_workspace() == "music"
    window.switcher.setCurrentRow(1)
    assert window.current_workspace() == "pathology" and "pathology" in window.views
    assert "Pathology" in window.windowTitle()
    with pytest.raises(KeyError, match="no workspace"):
        window.switch_to("nope")


class SlowEngine(Engine):
    """A fake engine that takes ten seconds unless cancelled."""

    id = "test-slow"

    def info(self):
        return EngineInfo(self.id, "Slow", "test", "radiology", "nothing", "a string")

    def predict(self, request, *, progress, cancel=None):
        for i in range(1000):
            cancel.raise_if_cancelled()
            progress(i / 1000, f"chunk {i}")
            time.sleep(0.01)
        return "finished"


def test_slow_engine_reports_progress_through_the_worker_and_can_be_cancelled(window, qtbot):
    fractions: list[float] = []
    engine = SlowEngine()
    task = window.tasks.submit_engine(engine, {}, title="Slow engine", owner="test", device="cpu")
    task.progress.connect(lambda f, m: fractions.append(f))
    row = window.task_panel.rows[id(task)]
    qtbot.waitUntil(lambda: len(fractions) >= 3, timeout=30_000)  # the runner imports torch first: slow when loaded
    assert row.label.text() == "Slow engine" and row.cancel_button.isEnabled()
    with qtbot.waitSignal(task.cancelled, timeout=5000):
        qtbot.mouseClick(row.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: task.state == Task.CANCELLED and not window.tasks.tasks, timeout=5000)
    assert fractions == sorted(fractions) and fractions[-1] < 1.0
    assert row.status.text() == "cancelled"
    assert engine.device == "cpu"  # the runner loaded it on the resolved device


def test_a_new_task_for_the_same_owner_cancels_the_old_one(qtbot):
    manager = TaskManager()

    def wait_for_cancel(progress, cancel):
        while True:
            cancel.raise_if_cancelled()
            time.sleep(0.005)

    first = manager.submit(wait_for_cancel, title="first", owner="view")
    with qtbot.waitSignal(first.cancelled, timeout=5000):
        second = manager.submit(lambda p, c: 42, title="second", owner="view")
    qtbot.waitUntil(lambda: second.state == Task.DONE and not manager.tasks, timeout=5000)
    assert first.state == Task.CANCELLED
    assert manager.shutdown(5000)


def test_engine_error_lands_in_notifications_and_the_window_stays_usable(window, qtbot):
    def failing(progress, cancel):
        raise EngineError("series.dcm: the file is truncated")

    task = window.tasks.submit(failing, title="Loading series", owner="test",
                               on_error=lambda msg, detail: window.notify("error", msg, detail))
    qtbot.waitUntil(lambda: task.state == Task.FAILED and window.notifications.error_count() == 1, timeout=5000)
    assert "the file is truncated" in window.notifications.items[0].message
    assert "Traceback" not in window.notifications.items[0].message
    assert window.messages_dock.windowTitle() == "Messages (1 error)"
    window.switch_to("music")  # still usable
    results = []
    window.tasks.submit(lambda p, c: "fine", title="After the error", on_result=results.append)
    qtbot.waitUntil(lambda: results == ["fine"], timeout=5000)


def test_unexpected_exception_is_shown_in_plain_language(window, qtbot):
    window.tasks.submit(lambda p, c: 1 / 0, title="Computing",
                        on_error=lambda msg, detail: window.notify("error", msg, detail))
    qtbot.waitUntil(lambda: window.notifications.error_count() == 1, timeout=5000)
    note = window.notifications.items[-1]
    assert note.message == "Computing failed: division by zero"
    assert "ZeroDivisionError" in note.detail  # the traceback is kept as detail (tooltip and log)


def _drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPoint(200, 200), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(event)
    return event


@pytest.mark.parametrize("kind", ["dicom", "audio", "slide"])
def test_drag_and_drop_routes_to_the_workspace_that_opens_it(window, qtbot, tmp_path, shared_data, kind):
    if kind == "dicom":
        path, expected = Path(get_testdata_file("CT_small.dcm")), "radiology"
    elif kind == "audio":
        path, expected = tmp_path / "tone.wav", "music"
        t = np.arange(22050) / 22050
        sf.write(path, 0.2 * np.sin(2 * np.pi * 440 * t), 22050)
    else:
        path, expected = shared_data / "openslide-fixtures" / "small.svs", "pathology"
    window.switch_to("textvqa")
    event = _drop(window, [path])
    assert event.isAccepted()
    qtbot.waitUntil(lambda: window.current_workspace() == expected, timeout=10_000)
    assert window.tasks.wait_idle(60)


def test_dropping_something_no_workspace_opens_gives_a_clear_message(window, qtbot, tmp_path):
    junk = tmp_path / "weights.bin"
    junk.write_bytes(b"\x00" * 64)
    _drop(window, [junk])
    qtbot.waitUntil(lambda: window.notifications.error_count() == 1, timeout=5000)
    assert "no workspace opens this kind of file" in window.notifications.items[-1].message
    _drop(window, [tmp_path / "gone.dcm"])
    qtbot.waitUntil(lambda: window.notifications.error_count() == 2, timeout=5000)
    assert "no such file" in window.notifications.items[-1].message


def test_geometry_recent_files_and_last_workspace_persist(qtbot, tmp_path):
    first = MainWindow(detect_device=False)
    qtbot.addWidget(first)
    first.show()
    first.resize(760, 580)  # within the offscreen screen, which clamps restored geometry
    size = (first.width(), first.height())
    first.add_recent(tmp_path / "a.svs")
    first.add_recent(tmp_path / "b.dcm")
    first.add_recent(tmp_path / "a.svs")
    first.close()
    settings, problem = Settings.load()
    assert problem == ""
    assert settings.recent_files == [str((tmp_path / "a.svs").resolve()), str((tmp_path / "b.dcm").resolve())]
    second = MainWindow(detect_device=False)
    qtbot.addWidget(second)
    assert (second.width(), second.height()) == size
    assert second.settings.recent_files[0].endswith("a.svs")
    second.switch_to("pathology")
    second.close()
    assert Settings.load()[0].last_workspace == "pathology"


def test_corrupt_settings_fall_back_to_defaults_with_a_warning(qtbot):
    Settings.path().write_text("{ not json")
    win = MainWindow(detect_device=False)
    qtbot.addWidget(win)
    assert win.settings.recent_files == []
    assert any("unreadable" in n.message for n in win.notifications.items)
    win.tasks.shutdown(1000)


def test_closing_while_a_job_runs_cancels_it_and_exits_cleanly(qtbot):
    win = MainWindow(detect_device=False)
    qtbot.addWidget(win)
    win.show()
    stopped = threading.Event()

    def forever(progress, cancel):
        try:
            while True:
                cancel.raise_if_cancelled()
                time.sleep(0.01)
        finally:
            stopped.set()

    task = win.tasks.submit(forever, title="Long inference", owner="test")
    qtbot.waitUntil(lambda: task.state == Task.RUNNING, timeout=5000)
    assert win.close()
    assert stopped.is_set() and task.token.cancelled
    assert win.tasks.pool.activeThreadCount() == 0


def test_device_is_shown_in_the_status_bar(qtbot):
    win = MainWindow()
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.device_resolved, timeout=60_000) as blocker:
        pass
    assert blocker.args[0].startswith("CPU, ")  # CSI_DEVICE=cpu in tests; no GPU needed
    assert win.device_widget.text() == f"Device: {blocker.args[0]}"
    assert "Compute device" in win.about_text() and blocker.args[0] in win.about_text()
    win.tasks.shutdown(1000)


def test_signal_emits_do_not_leak_references_to_true(qtbot):
    """PySide6 6.12.0 on CPython 3.11 drops a reference to True on every emit and aborts after ~1,000."""
    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        flag = Signal(bool)

    emitter = Emitter()
    received = [0]

    def count(value: bool) -> None:  # keeps no reference to the value
        received[0] += value

    emitter.flag.connect(count)
    before = sys.getrefcount(True)
    for _ in range(5000):
        emitter.flag.emit(True)
    after = sys.getrefcount(True)
    assert received[0] == 5000
    assert abs(after - before) < 100


def test_the_window_opens_without_importing_torch_or_pyqtgraph():
    code = ("import os, sys; os.environ['QT_QPA_PLATFORM']='offscreen';"
            "from app.main_window import MainWindow, create_app; app = create_app();"
            "w = MainWindow(detect_device=False); w.show(); app.processEvents();"
            "print('loaded:' + ','.join(m for m in ('torch', 'pyqtgraph', 'SimpleITK', 'openslide', "
            "'app.workspaces.radiology.view', 'app.workspaces.music.view') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "loaded:"
