"""The slice views of the radiology workspace bound to its RadiologySession: the axial, coronal and sagittal
planes (and the comparison view), their layout, and drawing the session's state into them.

Everything drawn is a slice of an array the session holds (a view, not a copy); the only arithmetic here is
what drawing needs: the difference image of one slice, a label slice's outline.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QGridLayout, QWidget

from app.workspaces.radiology.slice_view import AXIS_INDEX, SliceView
from engines.radiology.layers import outline
from engines.radiology.session import NORMAL_AXIS, PLANES

if TYPE_CHECKING:
    from app.workspaces.radiology.view import RadiologyWorkspace

LAYOUT_INDEX = {"three": 0, "axial": 1, "coronal": 2, "sagittal": 3, "side": 4}


class PlaneViews:
    """The three planes and the comparison view, laid out in ``host``; draws the session into them."""

    def __init__(self, workspace: "RadiologyWorkspace") -> None:
        self.ws = workspace
        self.session = workspace.session
        self.views = {p: SliceView(p) for p in PLANES}
        self.compare_view = SliceView("axial")
        self.compare_view.title.setText("Comparison")
        self.host = QWidget()
        self.grid = QGridLayout(self.host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.layout_mode = "three"
        self.single_plane = "axial"
        self.crosshair_visible = True
        self.flicker_on = False
        self.flicker = QTimer(workspace)
        self.flicker.setInterval(450)
        self.flicker.timeout.connect(self.flicker_tick)

    def all_views(self) -> list[SliceView]:
        return [*self.views.values(), self.compare_view]

    # ============================================================================================ layout
    def arrange(self) -> None:
        for v in self.all_views():
            self.grid.removeWidget(v)
            v.hide()
        linked = self.views["axial"].box if self.layout_mode == "side" else None
        self.compare_view.box.setXLink(linked)  # linked pan/zoom only while both are shown
        self.compare_view.box.setYLink(linked)
        if self.layout_mode == "three":
            self.grid.addWidget(self.views["axial"], 0, 0, 2, 1)
            self.grid.addWidget(self.views["coronal"], 0, 1)
            self.grid.addWidget(self.views["sagittal"], 1, 1)
            self.grid.setColumnStretch(0, 3)
            self.grid.setColumnStretch(1, 2)
            for p in PLANES:
                self.views[p].show()
        elif self.layout_mode == "side":
            self.grid.addWidget(self.views["axial"], 0, 0, 2, 1)
            self.grid.addWidget(self.compare_view, 0, 1, 2, 1)
            self.grid.setColumnStretch(0, 1)
            self.grid.setColumnStretch(1, 1)
            self.views["axial"].show()
            self.compare_view.show()
            QTimer.singleShot(0, self.reset_views)
        else:
            self.grid.addWidget(self.views[self.single_plane], 0, 0, 2, 2)
            self.grid.setColumnStretch(0, 1)
            self.grid.setColumnStretch(1, 0)
            self.views[self.single_plane].show()

    def set_layout(self, mode: str, plane: str = "axial") -> int:
        """mode: 'three', 'single' (with ``plane``) or 'side'; returns the layout box index it stands for."""
        self.layout_mode, self.single_plane = mode, plane
        self.arrange()
        self.render_all()
        return LAYOUT_INDEX[mode if mode != "single" else plane]

    def focus_plane(self) -> str:
        return self.single_plane if self.layout_mode == "single" else "axial"

    def reset_views(self) -> None:
        for view in self.all_views():
            view.reset_view()

    def new_volume(self, volume) -> None:
        """A new image: every view gets its grid; nothing of the previous image stays drawn."""
        self.flicker.stop()
        self.flicker_on = False
        for view in self.all_views():
            view.clear_measurements()
            view.set_grid(volume.shape, volume.geometry.spacing)
            view.show_compare(None)
        self.compare_view.show_image(np.zeros((2, 2), np.float32), (0, 1), None)  # drop the old volume's slice

    # ============================================================================================ drawing
    def gray_lut(self) -> np.ndarray | None:
        if not self.session.invert:
            return None
        return np.arange(255, -1, -1, dtype=np.ubyte)[:, None].repeat(3, axis=1)

    def render_all(self) -> None:
        if self.session.volume is None:
            return
        for plane in PLANES:
            if self.views[plane].isVisible() or self.layout_mode == "three" or plane == self.single_plane:
                self.render_plane(plane)
        if self.layout_mode == "side":
            self.render_compare_view()
        self.update_crosshairs()

    def render_every_plane(self) -> None:
        """Hidden planes too (a new volume: none may keep the old one alive)."""
        for plane in PLANES:
            self.render_plane(plane)
        self.render_all()

    def render_plane(self, plane: str) -> None:
        s = self.session
        view, vol, comparison = self.views[plane], s.volume, s.comparison
        width, level = s.window
        real_levels = (level - width / 2, level + width / 2)
        if comparison is not None and s.compare_mode == "difference":
            diff = s.slice_of(vol.voxels, plane).astype(np.float32) * vol.slope + vol.intercept
            diff -= s.slice_of(comparison.image, plane)
            view.show_image(diff, (-width / 4, width / 4), self.gray_lut())
        else:
            view.show_image(s.slice_of(vol.voxels, plane), s.levels(), self.gray_lut())
        if comparison is not None and s.compare_mode == "swipe":
            view.show_compare(s.slice_of(comparison.image, plane), real_levels, self.gray_lut(), swipe=s.swipe)
        elif comparison is not None and s.compare_mode == "flicker" and self.flicker_on:
            view.show_compare(s.slice_of(comparison.image, plane), real_levels, self.gray_lut())
        else:
            view.show_compare(None)
        self.render_overlay(plane)
        self.render_boxes(plane)
        self.ws.measure_panel.draw(plane)
        index, count = s.slice_index(plane)
        axis = NORMAL_AXIS[plane]
        where = vol.geometry.index_to_lps(s.cursor)[axis]
        view.set_corner_text(f"{index + 1}/{count}  {'xyz'[axis]} {where:.1f} mm\nW {width:.0f} L {level:.0f}")
        view.set_slice(index, count)

    def render_compare_view(self) -> None:
        s, cv = self.session, self.compare_view
        if s.comparison is None or s.volume is None:
            cv.show_image(np.zeros((2, 2), np.float32), (0, 1), None)
            cv.set_corner_text("no comparison image")
            return
        width, level = s.window
        cv.show_image(s.slice_of(s.comparison.image, "axial"), (level - width / 2, level + width / 2), self.gray_lut())
        index, count = s.slice_index("axial")
        name = s.comparison.name if len(s.comparison.name) <= 40 else s.comparison.name[:39] + "…"
        cv.set_corner_text(f"{name}\n{index + 1}/{count}")
        cv.set_slice(index, count)
        cv.show_overlay(None, None, 0)

    def render_overlay(self, plane: str) -> None:
        """Every visible label layer, in list order (the last one on top)."""
        drawn = []
        for layer in self.session.layers:
            if not layer.visible:
                continue
            data = self.session.slice_of(layer.labels, plane)
            opacity = layer.opacity
            if layer.outline:
                data = outline(data)
                opacity = min(1.0, 2 * opacity)  # thin lines need more opacity than a fill to be seen
            drawn.append((np.ascontiguousarray(data), layer.lut(), opacity))
        self.views[plane].show_overlays(drawn)

    def render_boxes(self, plane: str) -> None:
        view = self.views[plane]
        view.set_boxes(self.session.box_rects(plane, AXIS_INDEX[view.h_axis], AXIS_INDEX[view.v_axis]))

    def cursor_moved(self, changed) -> None:
        """The crosshair moved along the axes flagged in ``changed`` (i, j, k): redraw the planes it crosses."""
        for plane in PLANES:
            if changed[NORMAL_AXIS[plane]]:
                self.render_plane(plane)
        if changed[2] and self.layout_mode == "side":
            self.render_compare_view()
        self.update_crosshairs()

    def toggle_crosshair(self) -> None:
        self.crosshair_visible = not self.crosshair_visible
        self.update_crosshairs()

    def update_crosshairs(self) -> None:
        s = self.session
        if s.volume is None:
            return
        sp = s.volume.geometry.spacing
        for view in self.all_views():
            h, v = AXIS_INDEX[view.h_axis], AXIS_INDEX[view.v_axis]
            view.set_crosshair((s.cursor[h] + 0.5) * sp[h], (s.cursor[v] + 0.5) * sp[v], self.crosshair_visible)

    # ============================================================================================ comparison
    def compare_mode_changed(self, mode: str) -> None:
        if mode == "flicker" and self.session.comparison is not None:
            self.flicker.start()
        else:
            self.flicker.stop()
            self.flicker_on = False
        if mode == "side" and self.layout_mode != "side":
            self.ws.set_layout("side")
        elif mode != "side" and self.layout_mode == "side":
            self.ws.set_layout("three")
        self.render_all()

    def flicker_tick(self) -> None:
        if self.session.comparison is None:
            return
        self.flicker_on = not self.flicker_on
        if self.session.compare_mode != "flicker":
            self.session.set_compare_mode("flicker")
        self.render_all()
