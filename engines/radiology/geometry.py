"""Voxel geometry in DICOM patient coordinates (LPS, millimetres), carried with every array.

Arrays are indexed ``[k, j, i]`` (slice, row, column) like SimpleITK's ``GetArrayFromImage``; the geometry
speaks in ``(i, j, k)`` order like ITK: ``spacing[0]`` is the column spacing, ``direction[:, 0]`` is the unit
vector of increasing column index in LPS. ``index_to_lps`` is the single place where pixels become millimetres.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """Spacing, origin and direction of a 3-D voxel grid in LPS millimetres (ITK conventions)."""

    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)  # (i=column, j=row, k=slice) in mm
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)  # LPS centre of voxel (0, 0, 0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))  # columns: unit i, j, k axes in LPS

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        object.__setattr__(self, "direction", np.asarray(self.direction, dtype=float).reshape(3, 3))

    # -- conversions ----------------------------------------------------------------------------------
    @property
    def matrix(self) -> np.ndarray:
        """3x3 matrix M with lps = origin + M @ (i, j, k)."""
        return self.direction * np.asarray(self.spacing)[None, :]

    def affine(self) -> np.ndarray:
        """4x4 LPS affine of (i, j, k, 1)."""
        out = np.eye(4)
        out[:3, :3] = self.matrix
        out[:3, 3] = self.origin
        return out

    def index_to_lps(self, ijk: Sequence[float] | np.ndarray) -> np.ndarray:
        ijk = np.asarray(ijk, dtype=float)
        return np.asarray(self.origin) + ijk @ self.matrix.T

    def lps_to_index(self, lps: Sequence[float] | np.ndarray) -> np.ndarray:
        lps = np.asarray(lps, dtype=float)
        return (lps - np.asarray(self.origin)) @ np.linalg.inv(self.matrix).T

    def with_slice_spacing(self, dz: float) -> "Geometry":
        return Geometry((self.spacing[0], self.spacing[1], dz), self.origin, self.direction)

    # -- other libraries ------------------------------------------------------------------------------
    @classmethod
    def from_sitk(cls, image) -> "Geometry":
        dim = image.GetDimension()
        spacing = list(image.GetSpacing())[:3] + [1.0] * (3 - min(dim, 3))
        origin = list(image.GetOrigin())[:3] + [0.0] * (3 - min(dim, 3))
        d = np.asarray(image.GetDirection(), dtype=float).reshape(dim, dim)
        direction = np.eye(3)
        n = min(dim, 3)
        direction[:n, :n] = d[:n, :n]
        return cls(tuple(spacing), tuple(origin), direction)

    def problem(self) -> str | None:
        """Why ITK could not hold this geometry (zero/negative/NaN spacing, degenerate direction), or None."""
        if not all(np.isfinite(v) and v > 0 for v in self.spacing):
            return f"its voxel spacing ({' x '.join(f'{v:g}' for v in self.spacing)} mm) is not positive"
        if not np.all(np.isfinite(self.origin)) or not np.all(np.isfinite(self.direction)) or \
                abs(float(np.linalg.det(self.direction))) < 1e-6:
            return "its orientation (direction cosines) or origin is degenerate or not a number"
        return None

    def apply_to_sitk(self, image) -> None:
        problem = self.problem()
        if problem is not None:
            from engines.core.engine import EngineError

            raise EngineError(f"the image cannot be placed in patient coordinates: {problem}")
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(tuple(self.direction.ravel()))

    def to_sitk(self, array: np.ndarray):
        """A SimpleITK image of ``array`` (``[k, j, i]``) with this geometry (copies the voxels)."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(np.ascontiguousarray(array))
        self.apply_to_sitk(image)
        return image

    @classmethod
    def from_affine_kji(cls, affine: np.ndarray) -> "Geometry":
        """From an affine of (a0, a1, a2) = (k, j, i) array indices, as highdicom's Volume uses."""
        affine = np.asarray(affine, dtype=float)
        m = affine[:3, [2, 1, 0]]
        spacing = np.linalg.norm(m, axis=0)
        return cls(tuple(spacing), tuple(affine[:3, 3]), m / spacing[None, :])

    def affine_kji(self) -> np.ndarray:
        out = np.eye(4)
        out[:3, :3] = self.matrix[:, [2, 1, 0]]
        out[:3, 3] = self.origin
        return out

    def same_grid(self, other: "Geometry", tol: float = 1e-3) -> bool:
        return (np.allclose(self.spacing, other.spacing, atol=tol) and np.allclose(self.origin, other.origin, atol=tol)
                and np.allclose(self.direction, other.direction, atol=tol))

    # -- display orientation --------------------------------------------------------------------------
    def orientation_code(self) -> str:
        """Three letters: the patient direction each of the i, j, k axes points to (e.g. 'LPS')."""
        letters = (("R", "L"), ("A", "P"), ("I", "S"))
        code = ""
        for a in range(3):
            col = self.direction[:, a]
            b = int(np.argmax(np.abs(col)))
            code += letters[b][1 if col[b] > 0 else 0]
        return code

    def to_dict(self) -> dict:
        return {"spacing_mm": [round(s, 5) for s in self.spacing], "origin_mm": [round(o, 4) for o in self.origin],
                "direction": [round(float(v), 6) for v in self.direction.ravel()],
                "orientation": self.orientation_code()}


def reorient_to_lps(array: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, Geometry, tuple[tuple[int, ...], tuple[bool, ...]]]:
    """Permute and flip the array axes (no resampling, numpy views only) so that i, j, k point to L, P, S
    as closely as the acquisition allows. Returns (array view, geometry, (transpose order, flips)).

    Oblique acquisitions keep their obliquity in the direction matrix; only the nearest axes are swapped.
    """
    d = geometry.direction
    axis_of = [int(np.argmax(np.abs(d[:, a]))) for a in range(3)]  # voxel axis a -> LPS axis
    if sorted(axis_of) != [0, 1, 2]:
        return array, geometry, ((0, 1, 2), (False, False, False))
    inv = [axis_of.index(b) for b in range(3)]  # LPS axis b <- voxel axis
    # array axis for voxel axis a is 2 - a
    order = tuple(2 - inv[2 - n] for n in range(3))
    out = array.transpose(order)
    spacing = tuple(geometry.spacing[inv[b]] for b in range(3))
    direction = np.stack([d[:, inv[b]] for b in range(3)], axis=1)
    origin = np.asarray(geometry.origin, dtype=float)
    shape_ijk = out.shape[::-1]
    flips = []
    for b in range(3):
        if direction[b, b] < 0:
            origin = origin + direction[:, b] * spacing[b] * (shape_ijk[b] - 1)
            direction[:, b] = -direction[:, b]
            flips.append(True)
        else:
            flips.append(False)
    slices = tuple(slice(None, None, -1) if flips[2 - n] else slice(None) for n in range(3))
    out = out[slices]
    return out, Geometry(spacing, tuple(origin), direction), (order, tuple(flips))


def resample_labels(labels: np.ndarray, source: Geometry, target: Geometry, target_shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resampling of a label map (``[k, j, i]``) from one grid onto another through the
    patient coordinates, so a mask lands where it belongs whatever the two grids' orientation."""
    import SimpleITK as sitk

    if tuple(labels.shape) == tuple(target_shape) and source.same_grid(target):
        return labels
    src = source.to_sitk(labels)
    ref = sitk.Image([int(target_shape[2]), int(target_shape[1]), int(target_shape[0])], src.GetPixelID())
    target.apply_to_sitk(ref)
    out = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, src.GetPixelID())
    return sitk.GetArrayFromImage(out)
