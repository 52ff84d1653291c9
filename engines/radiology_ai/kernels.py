"""Physics-made CT kernel pairs: forward-project a slice, add Poisson noise, reconstruct with each kernel.

The kernel ladder, smooth to sharp, is skimage's filtered back-projection filters plus one sharper-than-ramp
kernel made by pre-filtering the sinogram (ramp times a high-frequency boost) and back-projecting unfiltered
(``iradon(filter_name=None)``)::

    hann < hamming < cosine < shepp-logan < ramp < edge

Every kernel reconstructs the *same* noisy sinogram, so a pair differs only by the kernel, as two
reconstructions of one scan do on a scanner. Values are in Hounsfield units throughout; the attenuation of
water (0.019 /mm at ~70 keV) converts HU to line integrals and back. No torch here: the data scripts, the
baselines and the tests use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

KERNELS: tuple[str, ...] = ("hann", "hamming", "cosine", "shepp-logan", "ramp", "edge")
SMOOTHEST, SHARPEST = KERNELS[0], KERNELS[-1]
MU_WATER_PER_MM = 0.019
EDGE_BOOST = 1.2  # edge kernel = ramp * (1 + EDGE_BOOST * (f / f_nyquist)^2), then a mild roll-off
HU_MIN, HU_MAX = -1024.0, 3071.0


@dataclass(frozen=True)
class ScanSettings:
    """Acquisition of one simulated scan: views over 180 degrees, photons per ray, pixel size."""

    n_angles: int = 256
    photons: float = 2.0e5
    pixel_mm: float = 1.4


def _padded_size(n: int) -> int:
    return max(64, int(2 ** np.ceil(np.log2(2 * n))))


def _edge_filter(size: int) -> np.ndarray:
    from skimage.transform.radon_transform import _get_fourier_filter

    ramp = _get_fourier_filter(size, "ramp")[:, 0]
    f = np.abs(np.fft.fftfreq(size)) / 0.5  # 0 .. 1 (Nyquist)
    boost = (1.0 + EDGE_BOOST * f ** 2) * np.exp(-(f / 0.95) ** 8)  # sharper than ramp, no ringing at Nyquist
    return ramp * boost


def reconstruct(sinogram: np.ndarray, theta: np.ndarray, kernel: str) -> np.ndarray:
    """Filtered back-projection of ``sinogram`` (line integrals) with a named kernel of the ladder."""
    from skimage.transform import iradon

    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel '{kernel}' (known: {', '.join(KERNELS)})")
    n = sinogram.shape[0]
    if kernel != "edge":
        return iradon(sinogram, theta=theta, filter_name=kernel, circle=True)
    size = _padded_size(n)
    padded = np.pad(sinogram, ((0, size - n), (0, 0)))
    filtered = np.real(np.fft.ifft(np.fft.fft(padded, axis=0) * _edge_filter(size)[:, None], axis=0))[:n]
    return iradon(filtered, theta=theta, filter_name=None, circle=True)


def hu_to_mu(hu: np.ndarray, pixel_mm: float) -> np.ndarray:
    """HU -> attenuation per pixel (what the projector integrates)."""
    return np.clip(MU_WATER_PER_MM * (1.0 + hu / 1000.0), 0.0, None) * pixel_mm


def mu_to_hu(mu: np.ndarray, pixel_mm: float) -> np.ndarray:
    return (mu / pixel_mm / MU_WATER_PER_MM - 1.0) * 1000.0


def simulate_pair_set(hu: np.ndarray, rng: np.random.Generator, settings: ScanSettings = ScanSettings(),
                      kernels: Sequence[str] = KERNELS) -> dict[str, np.ndarray]:
    """One noisy scan of ``hu`` (square, HU) reconstructed with each kernel: {kernel: HU image (float32)}.

    Outside the reconstruction circle the images are set to -1000 HU (air), as scanners do.
    """
    from skimage.transform import radon

    if hu.ndim != 2 or hu.shape[0] != hu.shape[1]:
        raise ValueError("a square 2-D slice is needed")
    n = hu.shape[0]
    yy, xx = np.mgrid[:n, :n]
    c = (n - 1) / 2
    inside = (yy - c) ** 2 + (xx - c) ** 2 <= (n / 2 - 1) ** 2
    hu = np.where(inside, hu, -1000.0)
    theta = np.linspace(0.0, 180.0, settings.n_angles, endpoint=False)
    mu = hu_to_mu(hu, settings.pixel_mm)
    sino = radon(mu, theta=theta, circle=True)
    counts = rng.poisson(settings.photons * np.exp(-sino)).astype(np.float64)
    noisy = -np.log(np.maximum(counts, 1.0) / settings.photons)
    out = {}
    for k in kernels:
        img = mu_to_hu(reconstruct(noisy, theta, k), settings.pixel_mm)
        img[~inside] = -1000.0
        out[k] = img.astype(np.float32)
    return out


# -- source slices --------------------------------------------------------------------------------------
def _resize(img: np.ndarray, n: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(img, (n, n), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def real_ct_slices(n: int = 256) -> list[tuple[str, np.ndarray]]:
    """The real CT slices reachable offline, in HU, resized to ``n`` x ``n``: (name, image).

    pydicom-data 693_UNCI.dcm (512^2), pydicom CT_small.dcm (128^2), and the two frames of pydicom-data
    eCT_Supplemental.dcm (Enhanced CT, 512^2). Each is a reconstruction already (with its own kernel and
    noise); here it only serves as the anatomy that gets scanned again.
    """
    import pydicom
    from pydicom.data import get_testdata_file

    out = []
    for name in ("693_UNCI.dcm", "CT_small.dcm", "eCT_Supplemental.dcm"):
        path = get_testdata_file(name)
        if path is None:
            continue
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array.astype(np.float32)
        frames = arr if arr.ndim == 3 else arr[None]
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        if "SharedFunctionalGroupsSequence" in ds:
            try:
                pvt = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
                slope, intercept = float(pvt.RescaleSlope), float(pvt.RescaleIntercept)
            except (AttributeError, IndexError):
                pass
        for f, frame in enumerate(frames):
            hu = np.clip(frame * slope + intercept, HU_MIN, HU_MAX)
            tag = name if len(frames) == 1 else f"{name}[frame {f + 1}]"
            out.append((tag, _resize(hu, n)))
    return out


def ellipse_phantom(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random body-like phantom in HU: a soft-tissue ellipse with fat, lungs, bones, small details."""
    yy, xx = (np.mgrid[:n, :n] - (n - 1) / 2) / (n / 2)
    img = np.full((n, n), -1000.0, dtype=np.float32)

    def ell(cx, cy, a, b, ang=0.0):
        ca, sa = np.cos(ang), np.sin(ang)
        u, v = (xx - cx) * ca + (yy - cy) * sa, -(xx - cx) * sa + (yy - cy) * ca
        return (u / a) ** 2 + (v / b) ** 2 <= 1

    a, b = rng.uniform(0.6, 0.85), rng.uniform(0.45, 0.7)
    img[ell(0, 0, a, b)] = rng.uniform(-120, -80)
    img[ell(0, 0, a - 0.05, b - 0.05)] = rng.uniform(20, 60)
    for _ in range(rng.integers(0, 3)):
        img[ell(rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3), rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.35),
                rng.uniform(0, np.pi))] = rng.uniform(-900, -700)
    for _ in range(rng.integers(8, 30)):
        r = rng.uniform(0.01, 0.12)
        img[ell(rng.uniform(-0.6, 0.6), rng.uniform(-0.45, 0.45), r, r * rng.uniform(0.4, 1.6),
                rng.uniform(0, np.pi))] = rng.choice([rng.uniform(-100, 200), rng.uniform(300, 1500)])
    return img


def shepp_logan_hu(n: int) -> np.ndarray:
    """skimage's Shepp-Logan phantom mapped to a CT-like HU range (0 -> air, 1 -> +1000 HU)."""
    from skimage.data import shepp_logan_phantom

    p = _resize(shepp_logan_phantom(), n)
    return (p * 2000.0 - 1000.0).astype(np.float32)


def anatomy_phantom(n: int, z_mm: float, seed: int) -> np.ndarray:
    """A slice of the radiology workspace's chest-abdomen phantom (engines.radiology.samples), in HU."""
    from engines.radiology.samples import ct_phantom_slice

    return _resize(ct_phantom_slice(z_mm, 512, 512, rng=np.random.default_rng(seed)), n)


def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip/rotate by 90 degrees (the projector is rotation-symmetric, so this adds new anatomy layouts)."""
    img = np.rot90(img, int(rng.integers(0, 4)))
    return np.ascontiguousarray(img[:, ::-1] if rng.random() < 0.5 else img)
