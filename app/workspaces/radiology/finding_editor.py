"""Editing a reviewed finding in the slice views: its box with drag handles, its mask with the brush.

The box of the finding being edited (``RadiologySession.editing``) is drawn on every plane whose slice cuts it
as a rectangle with eight scale handles (corners and edges); dragging a handle resizes it in that plane,
dragging inside moves it. When a drag ends the rectangle (view millimetres) goes to
``session.set_finding_rect``, which turns it into patient coordinates through the volume's geometry - one
undo step. The Brush and Eraser paint the finding's own mask layer (the session made it current); while they
are chosen the box only answers to its handles, so painting inside it paints. After an edit the finding's
volume and mean HU are measured in a worker (``session.finding_stats_job``), and a CT whose tags do not say
whether it is a head is looked at in a worker too (``session.window_choice_job``: a head opens in the brain
window). E toggles editing of the current finding.

A drag ends where the pointer is released: pyqtgraph's scene drops mouse moves that come faster than about 60
a second and its handles (and the box's own move) follow moves, not the release, so a fast drag used to end
a few pixels short. :class:`ReleaseROI` applies the release position before the drag is finished.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pyqtgraph as pg
from pyqtgraph.graphicsItems.ROI import Handle
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QKeySequence, QShortcut

from engines.radiology.session import PLANES

if TYPE_CHECKING:
    from app.workspaces.radiology.view import RadiologyWorkspace

EDIT_KEY = "E"
HANDLES = (((1, 1), (0, 0)), ((0, 0), (1, 1)), ((1, 0), (0, 1)), ((0, 1), (1, 0)),  # corners
           ((0.5, 1), (0.5, 0)), ((0.5, 0), (0.5, 1)), ((1, 0.5), (0, 0.5)), ((0, 0.5), (1, 0.5)))  # edges
BOX_COLOUR = QColor(255, 200, 0)


class ReleaseHandle(Handle):
    """A ROI handle that moves to the release position when its drag ends (not to the last move delivered)."""

    def mouseDragEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph override
        if ev.isFinish() and self.isMoving and ev.button() == Qt.LeftButton:
            self.movePoint(ev.scenePos() + self.cursorOffset, ev.modifiers(), finish=False)
        super().mouseDragEvent(ev)


class ReleaseROI(pg.ROI):
    """A rectangle whose handles (:class:`ReleaseHandle`) and whose own move end where the pointer ends."""

    def addHandle(self, info, index=None):  # noqa: N802 - pyqtgraph override
        if info.get("item") is None:
            info["item"] = ReleaseHandle(self.handleSize, typ=info["type"], pen=self.handlePen,
                                         hoverPen=self.handleHoverPen, parent=self, antialias=self._antialias)
        return super().addHandle(info, index=index)

    def mouseDragEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph override
        drag = self.mouseDragHandler
        if ev.isFinish() and self.isMoving and drag.dragMode == "translate":
            snap = True if (ev.modifiers() & drag.snapModifier) else None
            end = self.mapToParent(ev.pos()) + drag.cursorOffset
            self.translate(end - self.pos(), snap=snap, finish=False)
        super().mouseDragEvent(ev)


class FindingBoxEditor:
    """One handle rectangle per plane for the finding being edited, bound to the workspace's session."""

    def __init__(self, workspace: "RadiologyWorkspace") -> None:
        self.ws = workspace
        self.session = workspace.session
        self.rois: dict[str, pg.ROI] = {}
        self._placing = False
        for plane in PLANES:
            view = workspace.planes.views[plane]
            roi = ReleaseROI(QPointF(0, 0), QPointF(1, 1), pen=pg.mkPen(BOX_COLOUR, width=2), movable=True,
                             rotatable=False, resizable=False, removable=False)
            roi.handlePen = pg.mkPen(BOX_COLOUR, width=2)
            for pos, centre in HANDLES:
                roi.addScaleHandle(pos, centre)
            roi.setZValue(40)
            roi.hide()
            roi.sigRegionChangeFinished.connect(lambda r, p=plane: self._dragged(p, r))
            view.box.addItem(roi, ignoreBounds=True)
            self.rois[plane] = roi
        s = self.session
        s.finding_edit_changed.connect(lambda _fid: self.place_all())
        s.cursor_changed.connect(lambda _ijk, _changed: self.place_all())
        s.layers_changed.connect(self.place_all)
        s.finding_stats_due.connect(self.measure)
        s.volume_changed.connect(self._study_opened)
        workspace.tool_box.currentTextChanged.connect(self._tool_changed)
        self.shortcut = QShortcut(QKeySequence(EDIT_KEY), workspace)
        self.shortcut.setContext(Qt.WidgetWithChildrenShortcut)
        self.shortcut.activated.connect(self.toggle)

    # -- model -> view ------------------------------------------------------------------------------------
    def toggle(self) -> None:
        """Start or stop editing the current finding's box and mask (E)."""
        if self.session.review.current is None and self.session.editing is None:
            self.ws.context.notify("info", "No finding to edit: run a detector, then choose a finding in Review", "")
            return
        self.session.toggle_finding_edit()

    def place_all(self) -> None:
        for plane in PLANES:
            self.place(plane)

    def place(self, plane: str) -> None:
        roi = self.rois[plane]
        rect = self.session.finding_rect(plane)
        if rect is None:
            roi.hide()
            return
        h0, v0, h1, v1 = rect
        self._placing = True
        try:
            roi.setPos(QPointF(min(h0, h1), min(v0, v1)), update=False, finish=False)
            roi.setSize(QPointF(abs(h1 - h0), abs(v1 - v0)), update=True, finish=False)
        finally:
            self._placing = False
        roi.show()

    def _tool_changed(self, text: str) -> None:
        painting = text.lower() in ("brush", "eraser")
        for roi in self.rois.values():  # while painting, only the handles take the mouse
            roi.translatable = not painting
            roi.setAcceptedMouseButtons(Qt.NoButton if painting else Qt.LeftButton)

    # -- view -> model ------------------------------------------------------------------------------------
    def _dragged(self, plane: str, roi: pg.ROI) -> None:
        if self._placing or self.session.editing is None:
            return
        pos, size = roi.pos(), roi.size()
        self.session.set_finding_rect(plane, (pos.x(), pos.y(), pos.x() + size.x(), pos.y() + size.y()))
        self.place_all()  # the box as the session keeps it (in patient coordinates), on every plane

    # -- workers --------------------------------------------------------------------------------------------
    def measure(self, finding_id: str) -> None:
        """Volume and mean HU of an edited finding, measured off the GUI thread (stale answers are dropped)."""
        ws = self.ws
        ws.context.tasks.submit(self.session.finding_stats_job(finding_id), title=f"Measuring {finding_id}",
                                owner=f"{ws.manifest.id}:finding-stats:{finding_id}",
                                on_result=self.session.apply_finding_stats, on_error=ws._error)

    def _study_opened(self, volume) -> None:
        for roi in self.rois.values():
            roi.hide()
        job = self.session.window_choice_job() if volume is not None else None
        if job is None:
            return
        ws = self.ws
        ws.context.tasks.submit(job, title="Choosing the window", owner=f"{ws.manifest.id}:window-choice",
                                on_result=lambda r: self.session.apply_window_choice(*r), on_error=ws._error)
