"""The Lab's "Find versions in catalog…" on a tiny catalog built here from the bundled recordings with the
catalog's public functions (the cover-embedding engine's entries -> CoverCatalog.from_entries -> save, what
`csi-workstation covers index` writes): the search runs in a worker with progress, lists the matches with their
stage, can be cancelled, remembers the catalog, opens a double-clicked match in the music workspace, and says in
one sentence (dialog, Messages, log) when a catalog is missing, not a catalog or damaged."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from app.workspaces.music.lab.catalog_search import last_catalog
from tests.music_lab.test_panel import panel  # noqa: F401 - the panel on a real task manager and registry

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]
ROOT = Path(__file__).resolve().parents[2]
CHORALE = ROOT / "resources/samples/music/bwv153.1-piano.ogg"
SONG = ROOT / "resources/samples/music/sectoid-feelings-excerpt.ogg"
CLIPS = ROOT / "resources/samples/music_lab/covers"
A, B_VERSION = CLIPS / "bwv423-a.ogg", CLIPS / "bwv423-b-version.ogg"


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    """A folder holding a four-recording catalog: the two music samples and two versions of one chorale."""
    from engines.music_lab.catalog import CoverCatalog
    from engines.music_lab.cover_embed import ARCH, WEIGHTS, CoverEmbeddingEngine

    engine = CoverEmbeddingEngine()
    engine.load("cpu")
    items = [engine.predict({"recording": str(p)}) for p in (CHORALE, SONG, A, B_VERSION)]
    catalog = CoverCatalog.from_entries(items, {"name": WEIGHTS, "architecture": ARCH, "sha256": engine.card.sha256,
                                                "k_s": engine.k_s, "dim": len(items[0].embedding)})
    folder = tmp_path_factory.mktemp("catalog")
    catalog.save(folder / "library.npz")
    return folder


def _dialog(panel, catalog, song):
    panel.covers.query_edit.setText(str(song))
    panel.find_in_catalog()
    dialog = panel.catalog_dialog
    dialog.catalog_edit.setText(str(catalog))
    return dialog


def _rows(dialog):
    return [[dialog.table.item(r, c).text() for c in range(4)] for r in range(dialog.table.rowCount())]


def test_search_lists_versions_with_their_stage_and_remembers_the_catalog(qtbot, panel, catalog_dir, monkeypatch):
    import engines.music_lab.catalog as catalog_module

    threads, fractions = [], []
    real = catalog_module.query_catalog

    def spy(*args, **kw):
        threads.append(threading.current_thread().name)
        return real(*args, **kw)

    monkeypatch.setattr(catalog_module, "query_catalog", spy)
    dialog = _dialog(panel, catalog_dir, A)  # the folder the catalog was written into
    dialog.rerank_spin.setValue(4)
    dialog.progress.valueChanged.connect(fractions.append)
    with qtbot.waitSignal(dialog.result_ready, timeout=120_000):
        dialog.search()
    rows = _rows(dialog)
    assert [r[1] for r in rows[:2]] == [A.name, B_VERSION.name]  # itself, then its other version
    assert all(r[3] == "re-ranked" and r[2].endswith("cover probability") for r in rows)
    assert rows[0][2] == "100% cover probability" and int(rows[1][2].split("%")[0]) >= 50
    assert {r[1] for r in rows} == {CHORALE.name, SONG.name, A.name, B_VERSION.name}
    assert threads and threading.main_thread().name not in threads
    assert fractions[-1] == 100 and any(0 < f < 100 for f in fractions)
    assert "library.npz" in dialog.message.text() and "4 recordings" in dialog.message.text()
    assert last_catalog() == str(catalog_dir)
    # hash lookup alone: distances, stage "hash"
    dialog.rerank_spin.setValue(0)
    with qtbot.waitSignal(dialog.result_ready, timeout=60_000):
        dialog.search()
    rows = _rows(dialog)
    assert rows[0][1] == A.name and all(r[3] == "hash" and r[2].startswith("distance ") for r in rows)
    assert [n for n in panel.notes if n[0] == "error"] == []


def test_a_new_dialog_offers_the_last_catalog_and_a_double_click_asks_to_open(qtbot, panel, catalog_dir):
    dialog = _dialog(panel, catalog_dir / "library.npz", B_VERSION)
    dialog.rerank_spin.setValue(0)
    with qtbot.waitSignal(dialog.result_ready, timeout=120_000):
        dialog.search()
    with qtbot.waitSignal(panel.open_recording_requested, timeout=5_000) as opened:
        dialog.open_row(1)
    assert opened.args == [str(Path(dialog.table.item(1, 1).toolTip()))]
    assert Path(opened.args[0]).name == dialog.table.item(1, 1).text()
    from app.workspaces.music.lab.catalog_search import CatalogSearchDialog

    again = CatalogSearchDialog(panel.context)
    qtbot.addWidget(again)
    assert again.catalog_edit.text() == str(catalog_dir / "library.npz")


def test_cancelling_drops_the_search(qtbot, panel, catalog_dir):
    dialog = _dialog(panel, catalog_dir, A)
    dialog.search()
    task = dialog.task
    dialog.cancel()
    assert task.token.cancelled and dialog.message.text() == "Search cancelled."
    assert dialog.search_button.isEnabled() and not dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not task.active, timeout=120_000)
    assert dialog.table.rowCount() == 0 and dialog.result is None


def _written(name: str, data: bytes):
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return make


@pytest.mark.parametrize("make, words", [
    (lambda d: d / "nowhere", "there is no such catalog file or folder"),
    (lambda d: d, "holds no cover catalog"),
    (_written("damaged.npz", b"PK\x03\x04 not really a zip"), "damaged.npz is not a usable cover catalog"),
    (_written("notes.npz", b"my shopping list"), "notes.npz is not a cover catalog"),
])
def test_a_missing_or_damaged_catalog_is_one_sentence_in_the_window_and_the_log(qtbot, panel, tmp_path, caplog,
                                                                                 make, words):
    target = make(tmp_path)
    dialog = _dialog(panel, target, A)
    with caplog.at_level(logging.WARNING), qtbot.waitSignal(dialog.failed, timeout=60_000) as failed:
        dialog.search()
    assert words in failed.args[0] and words in dialog.message.text()
    assert "d04040" in dialog.message.styleSheet()  # shown as an error
    assert any(words in n[1] for n in panel.notes if n[0] == "error")
    assert any(words in r.getMessage() for r in caplog.records)
    assert dialog.table.rowCount() == 0 and dialog.search_button.isEnabled()


def test_a_truncated_catalog_is_damaged(qtbot, panel, catalog_dir, tmp_path):
    whole = (catalog_dir / "library.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[:len(whole) // 2])
    dialog = _dialog(panel, tmp_path / "cut.npz", A)
    with qtbot.waitSignal(dialog.failed, timeout=60_000) as failed:
        dialog.search()
    assert "cut.npz is not a usable cover catalog" in failed.args[0]


def test_a_match_opens_in_the_music_workspace(qtbot, window, catalog_dir):
    view = window.switch_to("music")
    view.lab.covers.query_edit.setText(str(A))
    view.lab.find_in_catalog()
    dialog = view.lab.catalog_dialog
    dialog.catalog_edit.setText(str(catalog_dir))
    dialog.rerank_spin.setValue(0)
    with qtbot.waitSignal(dialog.result_ready, timeout=120_000):
        dialog.search()
    row = next(r for r in range(dialog.table.rowCount()) if dialog.table.item(r, 1).text() == B_VERSION.name)
    view.tabs.setCurrentWidget(view.lab)
    with qtbot.waitSignal(view.opened, timeout=120_000) as opened:
        dialog.table.cellDoubleClicked.emit(row, 1)
    assert Path(opened.args[0]) == B_VERSION and view.tabs.currentWidget() is view.analysis
    dialog.close()
