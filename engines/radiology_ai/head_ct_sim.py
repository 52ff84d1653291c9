"""Simulated non-contrast head CT with haemorrhages and skull fractures of known extent (seed 5.6).

Anatomy: nilearn's MNI152 2009 template (a real averaged brain, 1 mm) with its grey-matter, white-matter and
brain-mask maps, shipped inside the nilearn wheel. The template is skull-stripped, so the skull and scalp are
built around its intracranial outline. Each simulated subject gets:

* a pose (rotation up to 8 deg yaw, 5 deg pitch/roll, anisotropic scale 0.9-1.1, shift) and a smooth random
  displacement field (shape warp, up to ~4 mm), atrophy (sulci and the convexity CSF layer widen),
  ventricles enlarged by 0-4 mm, and its own tissue HU (grey 34-42, white 22-30, CSF 2-10, texture);
* a skull whose thickness varies over the head (3-11 mm; dense inner and outer tables around the diploe)
  and a scalp with a fat layer;
* 0-3 findings with a voxel mask each: intraparenchymal (irregular, 50-90 HU, hypodense oedema rim),
  epidural (biconvex lens against the inner table), subdural (crescent along the convexity), subarachnoid
  (blood mixed into sulcal CSF), intraventricular (dependent blood in a lateral ventricle), and skull
  fractures (thin lucent lines through the bone, 0.6-2.5 mm wide: the thin ones are subtle at 2 mm pixels).
  Sizes go down to a few voxels and contrasts down to ~45 HU blood, so small subtle findings exist.

Then the CT physics of :mod:`engines.radiology_ai.kernels`: HU -> attenuation, forward projection over 180
degrees, Poisson noise at a chosen dose (photons per ray), filtered back-projection with one of the kernel
ladder's filters (hann ... ramp, and the sharper 'edge'), -> HU. The projector is a sparse matrix built from
the same linear-interpolation geometry that skimage's ``iradon`` back-projects with, so a whole volume is
projected and back-projected in a few matrix products (per-slice ``radon`` takes ~0.3 s a slice here).

Arrays are ``[k, j, i]`` in LPS: columns run to the patient's left, rows to posterior, slices to superior.
Subjects are reproducible from their seed. No torch here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from engines.radiology_ai import kernels as K

TYPES: dict[int, str] = {1: "intraparenchymal haemorrhage", 2: "epidural haemorrhage", 3: "subdural haemorrhage",
                         4: "subarachnoid haemorrhage", 5: "intraventricular haemorrhage", 6: "skull fracture"}
SHORT: dict[int, str] = {1: "IPH", 2: "EDH", 3: "SDH", 4: "SAH", 5: "IVH", 6: "fracture"}
HAEMORRHAGE_TYPES = (1, 2, 3, 4, 5)
TRAIN_KERNELS = ("hann", "hamming", "shepp-logan", "ramp")
HELD_OUT_KERNELS = ("cosine", "edge", "hann")
PIXEL_MM = 2.0
SIZE = 128
N_ANGLES = 180
HU_AIR = -1000.0


@dataclass
class HeadCase:
    """One simulated head CT: HU, geometry, a per-voxel finding type and a per-finding instance map."""

    hu: np.ndarray  # [k, j, i] float32
    spacing: tuple[float, float, float]  # (i, j, k) mm
    origin_lps: tuple[float, float, float]
    types: np.ndarray  # [k, j, i] uint8: 0 none, else a TYPES key
    instances: np.ndarray  # [k, j, i] uint8: 0 none, else finding number (1-based, index into findings)
    findings: list[dict[str, Any]] = field(default_factory=list)  # type, label, voxels, volume_ml, mean_hu
    brain: np.ndarray | None = None  # [k, j, i] bool intracranial space
    kernel: str = "hann"
    photons: float = 1e5
    seed: int = 0

    @property
    def case_types(self) -> set[int]:
        return {int(f["type"]) for f in self.findings}

    def geometry(self):
        from engines.radiology.geometry import Geometry

        return Geometry(self.spacing, self.origin_lps, np.eye(3))


# -- anatomy ------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def anatomy() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(gm, wm, brain mask, affine) of MNI152 at 1 mm from the nilearn wheel, arrays [x, y, z] (RAS) float32."""
    from nilearn import datasets

    gm = datasets.load_mni152_gm_template(resolution=1)
    wm = datasets.load_mni152_wm_template(resolution=1)
    mask = datasets.load_mni152_brain_mask(resolution=1)
    return (np.asarray(gm.dataobj, np.float32), np.asarray(wm.dataobj, np.float32),
            np.asarray(mask.dataobj, np.float32), np.asarray(gm.affine, float))


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _smooth_field(shape, sigma_vox, rng) -> np.ndarray:
    """Unit-SD smooth noise (drawn on a coarse grid and zoomed: cheap for large sigmas)."""
    from scipy import ndimage

    step = max(1, int(sigma_vox // 2))
    coarse = tuple(max(2, int(np.ceil(s / step)) + 1) for s in shape)
    f = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), max(0.5, sigma_vox / step))
    f = ndimage.zoom(f, [s / c for s, c in zip(shape, coarse)], order=1)[tuple(slice(0, s) for s in shape)]
    return (f - f.mean()) / (f.std() + 1e-6)


# -- projector -----------------------------------------------------------------------------------------
@lru_cache(maxsize=2)
def projector(n: int = SIZE, n_angles: int = N_ANGLES, sub: int = 2):
    """Sparse A (n_angles*n rows, n*n columns): A @ image = sinogram (line integrals in pixel units), with the
    detector geometry of skimage's ``radon``/``iradon(circle=True)``. Each pixel is split into ``sub`` x ``sub``
    points, each spread to its two nearest detector bins, so the projector does not alias; the back-projection
    is ``iradon``'s own (linear interpolation at pixel centres)."""
    from scipy import sparse

    radius = n // 2
    xpr, ypr = np.mgrid[:n, :n] - radius
    inside = (xpr ** 2 + ypr ** 2) <= radius ** 2
    pix = np.flatnonzero(inside.ravel())
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    angles = np.deg2rad(np.linspace(0.0, 180.0, n_angles, endpoint=False))

    def build(points):
        rows, cols, vals = [], [], []
        for a, angle in enumerate(angles):
            for xp, yp, wt in points:
                t = yp * np.cos(angle) - xp * np.sin(angle) + n // 2
                lo = np.floor(t).astype(np.int64)
                frac = t - lo
                for d, w in ((lo, 1.0 - frac), (lo + 1, frac)):
                    ok = (d >= 0) & (d < n) & (w > 0)
                    rows.append(a * n + d[ok])
                    cols.append(pix[ok])
                    vals.append(wt * w[ok])
        return sparse.csr_matrix((np.concatenate(vals).astype(np.float32),
                                  (np.concatenate(rows), np.concatenate(cols))), shape=(n_angles * n, n * n))

    x0, y0 = xpr.ravel()[pix].astype(np.float64), ypr.ravel()[pix].astype(np.float64)
    forward = build([(x0 + dx, y0 + dy, 1.0 / sub ** 2) for dx in offsets for dy in offsets])
    back = build([(x0, y0, 1.0)])
    return forward, back, inside


def _kernel_filter(size: int, kernel: str) -> np.ndarray:
    from skimage.transform.radon_transform import _get_fourier_filter

    if kernel not in K.KERNELS:
        raise ValueError(f"unknown kernel '{kernel}' (known: {', '.join(K.KERNELS)})")
    return K._edge_filter(size) if kernel == "edge" else _get_fourier_filter(size, kernel)[:, 0]


def scan(hu: np.ndarray, rng: np.random.Generator, *, kernel: str = "hann", photons: float = 1e5,
         pixel_mm: float = PIXEL_MM, n_angles: int = N_ANGLES) -> np.ndarray:
    """Scan HU slices ``[k, n, n]``: projection, Poisson noise (``photons`` per ray), FBP with ``kernel``."""
    nk, n, _ = hu.shape
    A, B, inside = projector(n, n_angles)
    mu = K.hu_to_mu(np.where(inside[None], hu, HU_AIR), pixel_mm).reshape(nk, n * n).T.astype(np.float32)
    sino = np.asarray(A @ mu).reshape(n_angles, n, nk)  # [angle, detector, slice]
    counts = rng.poisson(photons * np.exp(-sino.astype(np.float64)))
    noisy = -np.log(np.maximum(counts, 1.0) / photons)
    diag = int(np.ceil(np.sqrt(2) * n))  # iradon pads a circle sinogram to the square's diagonal
    size = max(64, int(2 ** np.ceil(np.log2(2 * diag))))
    filt = _kernel_filter(size, kernel)
    spec = np.fft.fft(noisy, n=size, axis=1) * filt[None, :, None]
    filtered = np.real(np.fft.ifft(spec, axis=1))[:, :n].reshape(n_angles * n, nk).astype(np.float32)
    rec = np.asarray(B.T @ filtered).T.reshape(nk, n, n) * (np.pi / (2 * n_angles))
    out = K.mu_to_hu(rec, pixel_mm).astype(np.float32)
    out[:, ~inside] = HU_AIR
    return out


# -- subject --------------------------------------------------------------------------------------------
def _tissue_maps(rng, nk: int, dz: float, z0: float, n: int, px: float):
    """Warped gm/wm/brain fractions on the output grid [k, j, i] and the output origin (LPS)."""
    from scipy import ndimage

    gm, wm, mask, aff = anatomy()
    origin = np.array([-(n - 1) / 2 * px, -(n - 1) / 2 * px + 18.0 + rng.uniform(-6, 6), z0])
    kk, jj, ii = np.meshgrid(np.arange(nk), np.arange(n), np.arange(n), indexing="ij")
    lps = np.stack([origin[0] + ii * px, origin[1] + jj * px, origin[2] + kk * dz], -1).reshape(-1, 3)
    ras = lps * np.array([-1.0, -1.0, 1.0])
    deg = np.pi / 180
    R = _rotation(rng.uniform(-5, 5) * deg, rng.uniform(-5, 5) * deg, rng.uniform(-8, 8) * deg)
    scale = rng.uniform(0.92, 1.08) * rng.uniform(0.95, 1.05, 3)
    centre = np.array([0.0, -18.0, 15.0])
    shift = np.array([rng.uniform(-5, 5), rng.uniform(-5, 5), rng.uniform(-4, 4)])
    Ainv = np.linalg.inv(R @ np.diag(scale))
    src = (ras - centre - shift) @ Ainv.T + centre
    amp = rng.uniform(1.5, 4.0)
    for axis in range(3):
        src[:, axis] += amp * _smooth_field((nk, n, n), 18.0 / px, rng).ravel()
    vox = (src - aff[:3, 3]) @ np.linalg.inv(aff[:3, :3]).T
    coords = vox.T.reshape(3, nk, n, n)
    maps = [ndimage.map_coordinates(a, coords, order=1, cval=0.0).astype(np.float32) for a in (gm, wm, mask)]
    return maps, origin


def _surface_points(ic: np.ndarray, zmin_k: int) -> np.ndarray:
    from scipy import ndimage

    surf = ic & ~ndimage.binary_erosion(ic)
    surf[:zmin_k] = False
    return np.argwhere(surf)


def simulate_head(seed: int, *, n_findings: int | None = None, types: tuple[int, ...] | None = None,
                  kernel: str | None = None, photons: float | None = None, slice_mm: float | None = None,
                  kernels: tuple[str, ...] = TRAIN_KERNELS, photon_range: tuple[float, float] = (2e5, 2e6),
                  slice_choices: tuple[float, ...] = (2.5, 3.0, 4.0, 5.0), p_negative: float = 0.25,
                  n: int = SIZE, px: float = PIXEL_MM) -> HeadCase:
    """One subject from ``seed``; ``n_findings``/``types`` force what is inserted (None: random, 0-3)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    dz = float(slice_mm or rng.choice(slice_choices))
    z0 = rng.uniform(-42, -34)
    nk = int(np.ceil((108.0 - z0) / dz))
    (g, w, b), origin = _tissue_maps(rng, nk, dz, z0, n, px)
    sampling = (dz, px, px)
    # atrophy: partial-tissue voxels lose tissue (sulci widen); a wider CSF layer over the convexity
    atrophy = rng.uniform(0, 1) ** 2
    tissue = np.clip(g + w, 0, 1)
    share = np.where(tissue > 1e-3, g / np.maximum(tissue, 1e-3), 0.5)
    tissue = tissue ** (1 + 1.8 * atrophy)
    bm = b > 0.5
    depth_b = ndimage.distance_transform_edt(bm, sampling=sampling)
    vent = (tissue < 0.45) & bm & (depth_b > 11.0)
    vent = ndimage.binary_opening(vent)
    grow = rng.uniform(0, 4.0) * (0.5 + atrophy)
    if grow > 0.5 and vent.any():
        vent = ndimage.distance_transform_edt(~vent, sampling=sampling) <= grow
        vent &= depth_b > 6.0
    tissue[vent] = 0.0
    out_b = ndimage.distance_transform_edt(~bm, sampling=sampling)
    ic = bm | (out_b <= rng.uniform(1.0, 2.5) + 2.0 * atrophy)
    ic = ndimage.binary_fill_holes(ic)
    csf = np.where(ic, 1.0 - tissue, 0.0).astype(np.float32)
    gm_frac, wm_frac = tissue * share, tissue * (1 - share)
    hu_gm, hu_wm, hu_csf = rng.uniform(34, 42), rng.uniform(22, 30), rng.uniform(2, 10)
    texture = 1.5 * _smooth_field(g.shape, 1.5, rng) + 1.0 * _smooth_field(g.shape, 6.0, rng)
    hu = np.where(ic, gm_frac * hu_gm + wm_frac * hu_wm + csf * hu_csf + tissue * texture, 0.0)
    # skull and scalp around the intracranial space
    d_out = ndimage.distance_transform_edt(~ic, sampling=sampling)
    thick = np.clip(rng.uniform(4.5, 7.0) + 1.8 * _smooth_field(g.shape, 25.0 / px, rng), 3.0, 11.0)
    jj = np.arange(n)[None, :, None] * px
    thick = thick + 1.5 * (jj / (n * px))  # occiput a little thicker
    table = rng.uniform(1.2, 2.0)
    soft = lambda x: np.clip(x / px + 0.5, 0.0, 1.0)  # noqa: E731 - partial-volume edge
    bone_frac = soft(d_out) * soft(thick - d_out)
    dense = np.maximum(soft(table - d_out), soft(d_out - (thick - table)))
    hu_table, hu_diploe = rng.uniform(1300, 1800), rng.uniform(350, 800)
    bone_hu = dense * hu_table + (1 - dense) * hu_diploe
    scalp_t = rng.uniform(4.0, 8.0)
    scalp = soft(d_out - thick) * soft(thick + scalp_t - d_out)
    fat = np.exp(-((d_out - thick - scalp_t / 2) / (scalp_t / 5)) ** 2)
    scalp_hu = 40.0 * (1 - fat) + rng.uniform(-110, -70) * fat
    outside = ~ic
    hu = np.where(outside, HU_AIR * (1 - bone_frac - scalp) + bone_frac * bone_hu + scalp * scalp_hu, hu)
    bone = bone_frac > 0.5
    # findings
    types_map = np.zeros(g.shape, np.uint8)
    inst = np.zeros(g.shape, np.uint8)
    findings: list[dict[str, Any]] = []
    if n_findings is None:
        n_findings = 0 if rng.random() < p_negative else int(rng.integers(1, 4))
    depth_ic = ndimage.distance_transform_edt(ic, sampling=sampling)
    zmin_k = int(np.ceil(max(0.0, -15.0 - z0) / dz))  # convexity points above the skull-base region
    surf = _surface_points(ic, zmin_k)
    pos = np.stack(np.meshgrid(np.arange(g.shape[0]) * dz, np.arange(n) * px, np.arange(n) * px, indexing="ij"), -1)
    hu_csf_map = hu_csf
    for _ in range(int(n_findings)):
        t = int(rng.choice(types)) if types else int(rng.integers(1, 7))
        weight, target = _finding(t, rng, hu=hu, ic=ic, bone=bone, tissue=tissue, csf=csf, vent=vent,
                                  depth_ic=depth_ic, surf=surf, pos=pos, px=px, hu_csf=hu_csf_map,
                                  bone_hu=bone_hu, dz=dz)
        if weight is None:
            continue
        mask = weight > (0.3 if t == 6 else 0.5)
        if t == 1:  # oedema rim around the clot (hypodense, not part of the mask)
            rim_mm = rng.uniform(0.5, 5.0) * min(1.0, mask.sum() * px * px * dz / 8000.0 + 0.3)
            rim = (ndimage.distance_transform_edt(~mask, sampling=sampling) <= rim_mm) & ~mask & (tissue > 0.3)
            hu = np.where(rim, hu - rng.uniform(4, 10) * tissue, hu)
        if t == 4:
            hu = hu + weight  # blood mixed into CSF: an HU increment
            mask = weight > 10.0
        else:
            hu = hu * (1 - weight) + weight * target
        if mask.sum() < 3:
            continue
        findings.append({"type": t})
        inst[mask] = len(findings)
        types_map[mask] = t
    for num, f in enumerate(findings, start=1):
        m = inst == num
        f.update(label=TYPES[f["type"]], voxels=int(m.sum()), volume_ml=round(float(m.sum()) * px * px * dz / 1000, 3))
    keep = [f for num, f in enumerate(findings, start=1) if f["voxels"] >= 3]
    if len(keep) != len(findings):  # a later finding covered an earlier one: renumber
        old = inst.copy()
        inst[:] = 0
        types_map[:] = 0
        new = []
        for num, f in enumerate(findings, start=1):
            m = old == num
            if m.sum() >= 3:
                new.append(f)
                inst[m] = len(new)
                types_map[m] = f["type"]
        findings = new
    kernel = kernel or str(rng.choice(kernels))
    photons = float(photons or np.exp(rng.uniform(np.log(photon_range[0]), np.log(photon_range[1]))))
    # photons per ray grow with the slice thickness (a 5 mm slice collects twice the quanta of a 2.5 mm one)
    img = scan(hu.astype(np.float32), rng, kernel=kernel, photons=photons * dz / 2.5, pixel_mm=px)
    for num, f in enumerate(findings, start=1):
        f["mean_hu"] = round(float(img[inst == num].mean()), 1)
    return HeadCase(img, (px, px, dz), tuple(float(v) for v in origin), types_map, inst, findings, ic,
                    kernel, photons, seed)


def _finding(t: int, rng, *, hu, ic, bone, tissue, csf, vent, depth_ic, surf, pos, px, hu_csf, bone_hu, dz):
    """(weight in [0, 1] (or an HU increment for SAH), target HU) of one finding of type ``t``; (None, None)
    when the anatomy offers no place for it."""
    from scipy import ndimage

    def dist_to(p):
        return np.sqrt(((pos - p) ** 2).sum(-1))

    blood = rng.uniform(45, 90) if rng.random() < 0.8 else rng.uniform(42, 55)  # some subtle, near-isodense
    if t == 1:
        cand = np.argwhere((tissue > 0.8) & (depth_ic > 8.0))
        if not len(cand):
            return None, None
        c = cand[rng.integers(len(cand))] * np.array([dz, px, px])
        r = float(np.exp(rng.uniform(np.log(2.5), np.log(18.0))))
        radii = r * rng.uniform(0.6, 1.0, 3)
        R = _rotation(*rng.uniform(0, np.pi, 3))
        u = (pos - c) @ R
        rr = np.sqrt(((u / radii) ** 2).sum(-1))
        rough = 0.25 * _smooth_field(rr.shape, max(1.0, r / (3 * px)), rng) * rng.uniform(0.3, 1.0)
        shape = ((rr + rough) < 1.0) & ic
        weight = ndimage.gaussian_filter(shape.astype(np.float32), 0.5)
        return weight * ic, blood
    if t in (2, 3, 4):
        if not len(surf):
            return None, None
        c = surf[rng.integers(len(surf))] * np.array([dz, px, px])
        d = dist_to(c)
        if t == 2:
            R, tmax = rng.uniform(12, 40), rng.uniform(3, 20)
            prof = tmax * np.sqrt(np.clip(1 - (d / R) ** 2, 0, 1))
        elif t == 3:
            R, tmax = rng.uniform(30, 75), float(np.exp(rng.uniform(np.log(2.0), np.log(15.0))))
            prof = tmax * np.clip(1 - (d / R) ** 2, 0, 1) ** 0.3
        else:
            R = rng.uniform(12, 35)
            region = (d < R) & ic & (depth_ic > 1.5) & (depth_ic < 25.0) & (csf > 0.25)
            region = ndimage.gaussian_filter(region.astype(np.float32), 0.7)
            frac = rng.uniform(0.5, 1.0)
            return region * csf * frac * (blood - hu_csf), 0.0
        shape = ic & (depth_ic < prof)
        weight = ndimage.gaussian_filter(shape.astype(np.float32), 0.5) * ic
        return weight, blood
    if t == 5:
        cand = np.argwhere(vent)
        if not len(cand):
            return None, None
        # dependent (posterior, supine patient) part of the ventricles around a seed
        c = cand[np.argsort(cand[:, 1])[-1 - rng.integers(0, max(1, len(cand) // 3))]] * np.array([dz, px, px])
        R = rng.uniform(8, 30)
        level = c[1] - rng.uniform(0, 12)
        shape = vent & (dist_to(c) < R) & (pos[..., 1] >= level)
        weight = ndimage.gaussian_filter(shape.astype(np.float32), 0.5) * vent
        return weight, blood
    if t == 6:
        outer = ndimage.binary_dilation(ic, iterations=2) & ~ic & bone
        cand = np.argwhere(outer)
        cand = cand[cand[:, 0] >= int(np.ceil(20.0 / dz))] if len(cand) else cand
        if not len(cand):
            return None, None
        c = cand[rng.integers(len(cand))] * np.array([dz, px, px])
        centre = np.array([pos[..., 0].max() / 2, pos[..., 1].max() / 2, pos[..., 2].max() / 2])
        radial = (c - centre) / (np.linalg.norm(c - centre) + 1e-6)
        tangent = np.cross(radial, rng.standard_normal(3))
        normal = tangent / (np.linalg.norm(tangent) + 1e-6)  # the fracture plane contains the radial direction
        width = float(np.exp(rng.uniform(np.log(0.6), np.log(2.5))))
        length = rng.uniform(10, 60)
        dplane = np.abs((pos - c) @ normal)
        cover = np.clip((width / 2 + px / 2 - dplane) / px, 0, 1) * (dist_to(c) < length / 2)
        return cover * bone, 40.0
    raise ValueError(f"unknown finding type {t}")


# -- DICOM ----------------------------------------------------------------------------------------------
def write_case(case: HeadCase, dest, *, header: str = "693_UNCI.dcm", description: str | None = None):
    """The case as an axial DICOM CT series in folder ``dest`` (int16, intercept -1024, BodyPartExamined HEAD)."""
    from pathlib import Path

    from engines.radiology_ai.samples import write_series

    stored = np.clip(np.rint(case.hu + 1024.0), -32768, 32767).astype(np.int16)
    tags = {"BodyPartExamined": "HEAD", "ProtocolName": "Head non-contrast (simulated)"}
    return write_series(Path(dest), stored, spacing_xyz=case.spacing, origin_lps=case.origin_lps, modality="CT",
                        description=description or f"Simulated head CT, {case.kernel} kernel (research)",
                        header=header, intercept=-1024.0, series_number=2, kernel=case.kernel.upper(), tags=tags)


SAMPLE_SEED = 4243


def sample_case(seed: int = SAMPLE_SEED, n_findings: int = 1) -> HeadCase:
    """The sample: a held-out subject with one intraparenchymal haemorrhage (or none), hann kernel, 5 mm."""
    return simulate_head(seed, n_findings=n_findings, types=(1,), kernel="hann", photons=8e5, slice_mm=5.0)


def make_sample(dest) -> "Path":
    """Write the sample case as a DICOM series (``ct/``) and its true finding(s) as ``truth.json``."""
    import json
    from pathlib import Path

    case = sample_case()
    folder = Path(dest) / "ct"
    write_case(case, folder, description="Simulated head CT with one haemorrhage (research sample)")
    truth = []
    g = case.geometry()
    for num, f in enumerate(case.findings, start=1):
        idx = np.argwhere(case.instances == num)
        lo, hi = g.index_to_lps(idx.min(0)[::-1]), g.index_to_lps(idx.max(0)[::-1])
        truth.append(dict(f, min_lps_mm=[float(v) for v in np.minimum(lo, hi)],
                          max_lps_mm=[float(v) for v in np.maximum(lo, hi)],
                          centre_lps_mm=[float(v) for v in g.index_to_lps(idx.mean(0)[::-1])]))
    (Path(dest) / "truth.json").write_text(json.dumps(truth, indent=1), encoding="utf-8")
    return folder
