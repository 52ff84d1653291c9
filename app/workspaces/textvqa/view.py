"""The Text & VQA workspace: ask a specialized ensemble about an image; spell words out in ARPAbet.

Thin widgets over the engines (vqa-mclkd, g2p-nsgd): every model call goes through context.tasks, one task per
tab (a new question cancels the previous one). The view draws; it never computes answers or pronunciations.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPlainTextEdit,
                               QPushButton, QSizePolicy, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget,
                               QVBoxLayout, QWidget)

from app.workspaces.base import ShellContext, WorkspaceView
from app.workspaces.manifest import WorkspaceManifest

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _item(text: str, align_right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
    if align_right:
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    return item


class SceneCanvas(QWidget):
    """The image, enlarged without smoothing, with an optional attention map (8x8 grid) over it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: np.ndarray | None = None
        self.attention: np.ndarray | None = None
        self.setMinimumSize(240, 220)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)

    def set_image(self, image: np.ndarray | None) -> None:
        self.image = None if image is None else np.ascontiguousarray(image[..., :3].astype(np.uint8))
        self.attention = None
        self.update()

    def set_attention(self, attention: np.ndarray | None) -> None:
        self.attention = attention
        self.update()

    def target_rect(self) -> QRect:
        side = min(self.width(), self.height()) - 8
        return QRect((self.width() - side) // 2, (self.height() - side) // 2, side, side)

    def paintEvent(self, event) -> None:  # noqa: ARG002
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(32, 32, 36))
        if self.image is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignCenter, "Open or drop an image\n(or use ‘Open the sample scene’)")
            return
        h, w, _ = self.image.shape
        qimg = QImage(self.image.data, w, h, 3 * w, QImage.Format_RGB888)
        rect = self.target_rect()
        p.drawImage(rect, qimg)
        if self.attention is not None:
            a = np.asarray(self.attention, np.float32)
            uniform = 1.0 / a.size  # only regions attended more than average are tinted
            a = np.clip((a - uniform) / max(float(a.max()) - uniform, 1e-6), 0, 1)
            gh, gw = a.shape
            heat = np.zeros((gh, gw, 4), np.uint8)
            heat[..., 0] = 255
            heat[..., 1] = (200 * (1 - a)).astype(np.uint8)
            heat[..., 3] = (170 * a).astype(np.uint8)
            himg = QImage(heat.data, gw, gh, 4 * gw, QImage.Format_RGBA8888)
            p.setRenderHint(QPainter.SmoothPixmapTransform, True)
            p.drawImage(rect, himg)
        p.end()


class VqaPanel(QWidget):
    answered = Signal(object)  # the engine's TextAnswer (answers r["key"] like the dict it was)
    autosave_failed = Signal(str)

    def __init__(self, view: "TextVqaWorkspace") -> None:
        super().__init__()
        self.view = view
        from engines.textvqa.session import TextVqaSession

        self.session = TextVqaSession()  # the open image, its questions and the last answer (Qt-free)
        self.ask_first_when_loaded = False

        self.canvas = SceneCanvas()
        self.image_label = QLabel("No image")
        self.image_label.setWordWrap(True)
        open_btn = QPushButton("Open image…")
        open_btn.clicked.connect(self._choose_image)
        sample_btn = QPushButton("Open the sample scene")
        sample_btn.clicked.connect(view.open_sample)
        self.att_model = QComboBox()
        self.att_model.addItem("no attention overlay")
        self.att_model.addItem("ensemble (mean of 5 models)")
        for m in range(5):
            self.att_model.addItem(f"model {m + 1}")
        self.att_hop = QComboBox()
        self.att_hop.addItems(["last hop", "first hop"])
        self.att_model.currentIndexChanged.connect(self._show_attention)
        self.att_hop.currentIndexChanged.connect(self._show_attention)
        att_row = QHBoxLayout()
        att_row.addWidget(QLabel("Attention:"))
        att_row.addWidget(self.att_model, 1)
        att_row.addWidget(self.att_hop)
        att_note = QLabel("<small>red: the grid cells the stacked attention weighted above average "
                          "(8×8 grid over the image)</small>")
        att_note.setWordWrap(True)
        left = QVBoxLayout()
        btn_row = QHBoxLayout()
        btn_row.addWidget(open_btn)
        btn_row.addWidget(sample_btn)
        btn_row.addStretch(1)
        left.addLayout(btn_row)
        left.addWidget(self.canvas, 1)
        left.addLayout(att_row)
        left.addWidget(att_note)
        left.addWidget(self.image_label)
        left_w = QWidget()
        left_w.setLayout(left)

        self.question = QLineEdit()
        self.question.setPlaceholderText("Ask about the scene, e.g. how many circles are there?")
        self.question.setMaxLength(2000)  # longer text is refused by the engine with a clear message
        self.question.returnPressed.connect(self.ask)
        self.ask_btn = QPushButton("Ask")
        self.ask_btn.clicked.connect(self.ask)
        q_row = QHBoxLayout()
        q_row.addWidget(self.question, 1)
        q_row.addWidget(self.ask_btn)
        self.suggested = QListWidget()
        self.suggested.setMaximumHeight(130)
        self.suggested.itemActivated.connect(self._ask_suggested)
        self.suggested.itemClicked.connect(self._ask_suggested)
        self.answer = QLabel("<i>Ask a question to see the ensemble's answer.</i>")
        self.answer.setTextFormat(Qt.RichText)
        self.answer.setWordWrap(True)
        f = self.answer.font()
        f.setPointSizeF(f.pointSizeF() * 1.15)
        self.answer.setFont(f)
        self.members = QTableWidget(0, 5)
        self.members.setHorizontalHeaderLabels(["model", "answer", "confidence", "specialist?",
                                                "family share"])
        self.members.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.members.horizontalHeaderItem(4).setToolTip(
            "share of this question family's held-out questions that training assigned to this model")
        self.members.verticalHeader().setVisible(False)
        self.members.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.members.setMinimumHeight(110)
        self.members.setMaximumHeight(230)
        self.members.itemSelectionChanged.connect(self._member_selected)
        self.history_list = QListWidget()
        self.history_list.itemActivated.connect(lambda it: self._ask_text(it.data(Qt.UserRole)))
        self.history_list.itemClicked.connect(lambda it: self.question.setText(it.data(Qt.UserRole)))

        right = QVBoxLayout()
        right.addLayout(q_row)
        right.addWidget(QLabel("Suggested questions (click to ask):"))
        right.addWidget(self.suggested)
        right.addWidget(self.answer)
        box = QGroupBox("The five models (MCL-KD specialists)")
        bl = QVBoxLayout(box)
        bl.addWidget(self.members)
        right.addWidget(box)
        right.addWidget(QLabel("Questions asked about this image:"))
        right.addWidget(self.history_list, 1)
        disclaimer = QLabel("<small>Models trained on generated 64×64 scenes only (6 colours, 3 shapes, 2 sizes, "
                            "metal/rubber). Research use only.</small>")
        disclaimer.setWordWrap(True)
        right.addWidget(disclaimer)
        right_w = QWidget()
        right_w.setLayout(right)

        split = QSplitter(Qt.Horizontal)
        split.addWidget(left_w)
        split.addWidget(right_w)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self._fill_suggestions()
        from engines.core.autosave import AutosaveWriter

        self.writer = AutosaveWriter(on_error=self.autosave_failed.emit)  # emitted on the writer thread
        self.autosave_failed.connect(lambda message: self.view.context.notify("error", message, ""))

    # -- the session's state under the names the panel has always had ---------------------------------
    path = property(lambda self: self.session.path)
    image = property(lambda self: self.session.image)
    last = property(lambda self: self.session.last)
    history = property(lambda self: self.session.history)  # resolved image path -> its questions
    history_file = property(lambda self: self.session.history_file)  # the open image's history autosave

    # -- history (one autosave per image through engines.core.autosave, written off the GUI thread) ------
    def _save_history(self) -> None:
        self.session.save_autosave(self.writer)

    def shutdown(self) -> None:
        """Write the pending history now and stop the autosave thread."""
        self.writer.close()

    # -- images ---------------------------------------------------------------------------------------
    def _choose_image(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Open an image", "", "Images (*.png *.jpg *.jpeg *.bmp *.tif)")
        if name:
            self.view.open_path(Path(name))

    def load_image(self, path: Path) -> None:
        from engines.textvqa.session import read_image_for_session

        def job(progress, cancel):  # noqa: ARG001
            return read_image_for_session(path)

        def done(opened) -> None:
            self.session.open(opened)  # this session's questions win over the saved ones
            if opened.notice:
                self.view.context.notify("warning", opened.notice, "")
            self.canvas.set_image(opened.image)
            h, w = opened.image.shape[:2]
            known = "generated scene (answers known)" if opened.sidecar else "your image (no known answers)"
            self.image_label.setText(f"<b>{Path(path).name}</b> — {w}×{h}, {known}")
            self._fill_suggestions()
            self._fill_history()
            self.answer.setText("<i>Ask a question to see the ensemble's answer.</i>")
            self.members.setRowCount(0)
            self.view.context.add_recent(Path(path))
            self.view.opened.emit(str(path))
            if self.ask_first_when_loaded and self.suggested.count():
                self.ask_first_when_loaded = False
                self._ask_text(self.suggested.item(0).text())

        self.view.context.tasks.submit(job, title=f"Reading {Path(path).name}", owner="textvqa:image",
                                       on_result=done, on_error=self.view.error)

    def _fill_suggestions(self) -> None:
        self.suggested.clear()
        for t in self.session.suggestions():
            self.suggested.addItem(t)

    def _fill_history(self) -> None:
        self.history_list.clear()
        for h in reversed(self.session.entries()):
            mark = "" if h["truth"] is None else ("  ✓" if h["correct"] else f"  ✗ (truth: {h['truth']})")
            item = QListWidgetItem(f"{h['question']}  →  {h['answer']}{mark}")
            item.setData(Qt.UserRole, h["question"])
            self.history_list.addItem(item)

    # -- asking ---------------------------------------------------------------------------------------
    def _ask_suggested(self, item: QListWidgetItem) -> None:
        self._ask_text(item.text())

    def _ask_text(self, text: str) -> None:
        self.question.setText(text)
        self.ask()

    def ask(self) -> None:
        question = self.question.text()
        problem = self.session.question_problem(question)
        if problem:
            self.view.context.notify("warning", problem, "")
            return
        engine = self.view.context.registry().get("vqa-mclkd")
        self.answer.setText("<i>asking the five models…</i>")
        self.view.context.tasks.submit_engine(
            engine, self.session.request(question), title="Answering the question",
            owner="textvqa:vqa", on_result=self.show_result, on_error=self._failed)

    def _failed(self, message: str, detail: str) -> None:
        self.answer.setText("<i>No answer (see the message).</i>")
        self.view.error(message, detail)

    def show_result(self, r: dict) -> None:
        truth = ""
        if r["truth"] is not None:
            ok = "✓ correct" if r["correct"] else f"✗ wrong — the scene says <b>{r['truth']}</b>"
            oracle = "yes" if r["oracle"] else "no"
            truth = f"<br>{ok}; oracle (any model right): {oracle}"
        spec = ", ".join(str(m) for m in r["specialists"])
        notes = "".join(f"<br><small>note: {n}</small>" for n in r["notes"])
        if r.get("reliable", True):
            headline = (f"Answer: <b style='font-size:large'>{r['answer']}</b> "
                        f"({r['confidence'] * 100:.0f}% ensemble)")
        else:  # out of the model's domain: the warning is the headline, the answer comes after it, unreliable
            import html

            headline = (f"<div style='background:#fff4c2; color:#4a3b00; padding:4px;'><b>"
                        f"{html.escape(str(r.get('headline') or 'This picture is outside what the model knows.'))}"
                        f"</b></div>Model's answer (unreliable): {r['answer']} "
                        f"({r['confidence'] * 100:.0f}% ensemble, not to be trusted here)")
            self.view.context.notify("warning", f"VQA: {r.get('headline')}", "")
        self.answer.setText(
            f"{headline}"
            f"{truth}<br>Question family: <b>{r['family']}</b>; its specialists (k={r['k']}): model{'s' if len(r['specialists']) > 1 else ''} {spec}"
            f"{notes}")
        self.members.setRowCount(len(r["members"]))
        for i, m in enumerate(r["members"]):
            self.members.setItem(i, 0, _item(f"model {m['model']}"))
            ans = _item(m["answer"])
            if r["truth"] is not None:
                ans.setForeground(QColor(30, 140, 60) if m["answer"] == r["truth"] else QColor(190, 40, 40))
            self.members.setItem(i, 1, ans)
            self.members.setItem(i, 2, _item(f"{m['confidence'] * 100:.1f}%", True))
            self.members.setItem(i, 3, _item("specialist" if m["specialist"] else "—"))
            self.members.setItem(i, 4, _item(f"{m['share_of_family'] * 100:.0f}%", True))
        self.session.record_answer(r)
        self._fill_history()
        self._save_history()
        if self.att_model.currentIndex() == 0:
            self.att_model.setCurrentIndex(1)
        self._show_attention()
        self.answered.emit(r)

    def _member_selected(self) -> None:
        rows = {i.row() for i in self.members.selectedItems()}
        if rows:
            self.att_model.setCurrentIndex(2 + min(rows))

    def _show_attention(self) -> None:
        r = self.last
        idx = self.att_model.currentIndex()
        if not r or idx == 0 or r["members"][0]["attention"] is None:
            self.canvas.set_attention(None)
            return
        hop = -1 if self.att_hop.currentIndex() == 0 else 0
        maps = [np.asarray(m["attention"])[hop] for m in r["members"]]
        self.canvas.set_attention(np.mean(maps, 0) if idx == 1 else maps[idx - 2])


class G2pPanel(QWidget):
    pronounced = Signal(object)  # the engine's TextAnswer

    def __init__(self, view: "TextVqaWorkspace") -> None:
        super().__init__()
        self.view = view
        self.result: dict | None = None
        self.text = QPlainTextEdit()
        self.text.setPlaceholderText("Type words or paste text, e.g.: knight colonel thoroughly Worcestershire")
        self.text.setMaximumHeight(90)
        self.order = QComboBox()
        self.order.addItem("non-sequential greedy (NSGD)", "nsgd")
        self.order.addItem("left to right (comparison)", "l2r")
        self.go = QPushButton("Pronounce")
        self.go.clicked.connect(self.pronounce)
        row = QHBoxLayout()
        row.addWidget(QLabel("Decoding:"))
        row.addWidget(self.order)
        row.addStretch(1)
        row.addWidget(self.go)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["word", "pronunciation (ARPAbet)", "model's guess", "other decoding order",
                                              "model agrees with dictionary"])
        self.table.horizontalHeaderItem(1).setToolTip(
            "the CMU Pronouncing Dictionary's pronunciation when it knows the word, else the model's guess")
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.itemSelectionChanged.connect(self._row_selected)
        self.steps = QTableWidget(0, 4)
        self.steps.setHorizontalHeaderLabels(["step", "filled position ← symbol", "probability", "canvas after this step"])
        for col in range(3):
            self.steps.horizontalHeader().setSectionResizeMode(col, QHeaderView.ResizeToContents)
        self.steps.horizontalHeader().setSectionResizeMode(3, QHeaderView.Stretch)
        self.steps.verticalHeader().setVisible(False)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.Monospace)
        self.steps.setFont(mono)
        self.alternatives = QListWidget()
        self.skipped = QLabel("")
        self.skipped.setWordWrap(True)
        detail = QSplitter(Qt.Horizontal)
        sbox = self.steps_box = QGroupBox("Fill order (which position was decided when)")
        QVBoxLayout(sbox).addWidget(self.steps)
        abox = QGroupBox("Alternatives (runner-up at the least sure steps), log-probability")
        QVBoxLayout(abox).addWidget(self.alternatives)
        detail.addWidget(sbox)
        detail.addWidget(abox)
        detail.setStretchFactor(0, 3)
        detail.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text)
        layout.addLayout(row)
        layout.addWidget(self.skipped)
        layout.addWidget(self.table, 2)
        layout.addWidget(detail, 3)
        layout.addWidget(QLabel("<small>ARPAbet without stress. Speaking the result is not built yet. "
                                "Research use only.</small>"))

    def set_text(self, text: str) -> None:
        self.text.setPlainText(text)

    def pronounce(self) -> None:
        text = self.text.toPlainText()
        if not text.strip():
            self.view.context.notify("warning", "Type a word first.", "")
            return
        engine = self.view.context.registry().get("g2p-nsgd")
        self.skipped.setText("<i>decoding…</i>")
        self.view.context.tasks.submit_engine(
            engine, {"words": text, "order": self.order.currentData()}, title="Pronouncing words",
            owner="textvqa:g2p", on_result=self.show_result, on_error=self._failed)

    def _failed(self, message: str, detail: str) -> None:
        self.skipped.setText("")
        self.view.error(message, detail)

    def show_result(self, r: dict) -> None:
        self.result = r
        skipped = "; ".join(f"<b>{s['token']}</b>: {s['reason']}" for s in r["skipped"])
        self.skipped.setText(f"Skipped — {skipped}" if skipped else "")
        words = r["words"]
        self.table.setRowCount(len(words))
        for i, w in enumerate(words):
            self.table.setItem(i, 0, _item(w["word"]))
            model = " ".join(w["phonemes"]) or "(nothing)"
            shown = " ".join(w["pronunciation"]) or "(nothing)"
            if w["pronunciation_source"] == "dictionary":  # other dictionary readings in the tooltip
                cell = _item(f"{shown}   (CMUdict)")
                cell.setToolTip("CMUdict: " + " | ".join(" ".join(p) for p in w["dictionary"]))
            else:
                cell = _item(f"{shown}   (model's guess: not in CMUdict)")
            self.table.setItem(i, 1, cell)
            self.table.setItem(i, 2, _item(f"{model}   (model, {w['order']})"))
            other = w["other_order"]
            self.table.setItem(i, 3, _item("" if other is None else f"{' '.join(other['phonemes'])}  ({other['order']})"))
            match = w["matches_dictionary"]
            cell = _item("—" if match is None else ("yes" if match else "no"))
            if match is not None:
                cell.setForeground(QColor(30, 140, 60) if match else QColor(190, 40, 40))
            self.table.setItem(i, 4, cell)
        if words:
            self.table.selectRow(0)
        self.pronounced.emit(r)

    def _row_selected(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if not rows or not self.result:
            return
        w = self.result["words"][min(rows)]
        n_shown = len(w["phonemes"]) + 1  # the phonemes and the end mark; later positions are padding
        canvas = ["_"] * 20
        steps = w["fill_order"]
        shown = [s for s in steps if s["position"] <= n_shown]
        self.steps_box.setTitle(f"Fill order of '{w['word']}' (which position was decided when; "
                                f"{len(steps) - len(shown)} padding positions after the end not shown)")
        self.steps.setRowCount(len(shown))
        row = 0
        for s in steps:
            canvas[s["position"] - 1] = s["symbol"] if s["symbol"] != "</s>" else "·"
            if s["position"] > n_shown:
                continue
            self.steps.setItem(row, 0, _item(str(s["step"]), True))
            self.steps.setItem(row, 1, _item(f"{s['position']:>2} ← {s['symbol']}"))
            self.steps.setItem(row, 2, _item(f"{s['probability'] * 100:.1f}%", True))
            self.steps.setItem(row, 3, _item(" ".join(f"{c:<3}" for c in canvas[:max(n_shown, 4)])))
            row += 1
        self.alternatives.clear()
        self.alternatives.addItem(f"{' '.join(w['phonemes'])}   ({w['log_prob']:.2f}, chosen)")
        for a in w["alternatives"]:
            self.alternatives.addItem(f"{' '.join(a['phonemes'])}   ({a['log_prob']:.2f})")


class TextVqaWorkspace(WorkspaceView):
    """Two tabs: visual questions about a scene, and pronunciations of words."""

    def __init__(self, manifest: WorkspaceManifest, context: ShellContext, parent: QWidget | None = None) -> None:
        super().__init__(manifest, context, parent)
        self.tabs = QTabWidget()
        self.vqa = VqaPanel(self)
        self.g2p = G2pPanel(self)
        self.tabs.addTab(self.vqa, "Visual questions (VQA)")
        self.tabs.addTab(self.g2p, "Pronunciation (G2P)")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        self.setAcceptDrops(True)

    def error(self, message: str, detail: str = "") -> None:
        self.context.notify("error", message, detail)

    def open_path(self, path: Path) -> None:
        path = Path(path)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            self.tabs.setCurrentWidget(self.vqa)
            self.vqa.load_image(path)
            return
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                self.error(f"{path.name}: no images in this folder")
                return
            self.open_path(images[0])
            return

        def job(progress, cancel):  # noqa: ARG001
            return path.read_text(encoding="utf-8")[:20000]

        def done(text: str) -> None:
            self.tabs.setCurrentWidget(self.g2p)
            self.g2p.set_text(text)
            self.g2p.pronounce()
            self.context.add_recent(path)
            self.opened.emit(str(path))

        self.context.tasks.submit(job, title=f"Reading {path.name}", owner="textvqa:text", on_result=done,
                                  on_error=self.error)

    def shutdown(self) -> None:
        self.vqa.shutdown()

    def open_sample(self) -> None:
        """Open the generated scene and ask its first question, so the panel shows a worked example."""
        self.vqa.ask_first_when_loaded = True
        super().open_sample()

    # drops on the workspace itself (the window routes drops too, by file kind)
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.open_path(Path(urls[0].toLocalFile()))

