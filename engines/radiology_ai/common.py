"""What the radiology AI engines share: reading the input, acquisition-plane slicing, building a network
from its card, and writing a derived DICOM series (new UIDs, the source's geometry) atomically."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from engines.core.engine import CancelToken, EngineError, ProgressFn, no_progress

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")


def input_volume(request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                 cancel: CancelToken | None = None):
    """The request's reader ``Volume``: ``volume`` as given, else read from ``image_path``."""
    from engines.radiology.reader import Volume

    volume = request.get("volume") if hasattr(request, "get") else None
    if volume is not None:
        if not isinstance(volume, Volume):
            raise EngineError("the request's 'volume' is not a radiology Volume (engines.radiology.reader.Volume)")
        return volume
    path = request.get("image_path") if hasattr(request, "get") else None
    if path is None:
        raise EngineError("nothing to process: give a series folder, a DICOM file or a NIfTI/MHA/NRRD volume")
    from engines.radiology.ct_tissue import open_volume

    return open_volume(Path(path), progress=progress, cancel=cancel)


def missing_slices(volume) -> int:
    series = getattr(volume, "series", None)
    if series is None or not series.slots:
        return 0
    return sum(1 for s in series.slots if s is None)


def acquisition_axis(volume) -> int:
    """The axis of ``volume.voxels`` ([k, j, i], display order) that runs along the acquired slice normal."""
    src = volume.source_geometry
    if src is None:
        return 0
    normal = np.asarray(src.direction, dtype=float)[:, 2]
    cols = np.asarray(volume.geometry.direction, dtype=float)  # columns: i, j, k directions
    dots = np.abs(cols.T @ normal)  # |i.n|, |j.n|, |k.n|
    return {0: 2, 1: 1, 2: 0}[int(np.argmax(dots))]


def to_slices(arr: np.ndarray, axis: int) -> np.ndarray:
    """[k, j, i] -> [slice, row, col] with slices along ``axis``."""
    return np.moveaxis(arr, axis, 0)


def from_slices(arr: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(arr, 0, axis)


def network_from_card(card):
    """A fresh network (weights not loaded) of the architecture and arguments ``card`` names: the kernel
    conversion CNN or the 2-D U-Net. The engines' ``build_network``; the template loads the weights."""
    from engines.radiology_ai import nets

    args = dict(card.arch_args)
    if card.architecture == nets.KERNEL_ARCH:
        return nets.KernelConversionNet(stages=int(args["stages"]), channels=int(args["channels"]),
                                        blocks_per_stage=int(args.get("blocks_per_stage", 1)),
                                        dilations=tuple(args.get("dilations", (1,))))
    if card.architecture == nets.UNET_ARCH:
        return nets.UNet2D(in_channels=int(args["in_channels"]), classes=int(args["classes"]),
                           base=int(args["base"]), levels=int(args["levels"]), se=bool(args["se"]))
    raise ValueError(f"the weights hold a '{card.architecture}' model, which this engine cannot run")


def load_channels_last(engine, device: str) -> None:
    """``ModelEngine.load`` for a 2-D CNN, keeping its weights channels-last afterwards: oneDNN's
    convolutions run 1.4-2x faster that way on the CPU with the same numbers (benchmarks/engines)."""
    import torch

    from engines.core.model_engine import ModelEngine

    ModelEngine.load(engine, device)
    engine._networks[device] = engine._networks[device].to(memory_format=torch.channels_last)


def channels_last(x):
    """A 4-D input tensor in the channels-last layout the networks are kept in."""
    import torch

    return x.contiguous(memory_format=torch.channels_last)


def attach_network(engine, network, card, device: str = "cpu"):
    """Give a ModelEngine a network in memory (a training script's model being evaluated) instead of the
    shipped weights, so the evaluation runs the engine's own prepare/infer/finish. Returns the engine."""
    return engine.attach_network(network, card, device)


# -- derived DICOM series ------------------------------------------------------------------------------
def write_derived_series(volume, source, out: Path, *, description: str, series_number_offset: int = 1000,
                         derivation: str = "", progress: ProgressFn = no_progress) -> list[Path]:
    """Write ``volume`` (same grid as ``source``, a DICOM-loaded Volume) as a new DICOM series in folder ``out``.

    Each slice takes its source slice's header (patient, study, position, orientation, spacing), with a new
    SeriesInstanceUID and SOPInstanceUIDs, ImageType DERIVED, the given SeriesDescription, and int16 pixels
    with the source's rescale. The folder appears complete or not at all (written beside it, then renamed).
    """
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from engines.radiology.geometry import resample_labels

    series = getattr(source, "series", None)
    if series is None or not series.slices or source.source_geometry is None:
        raise EngineError("DICOM export needs a DICOM series as the input; write .nii.gz or .mha instead")
    out = Path(out)
    if out.suffix.lower() == ".dcm" or out.exists() and out.is_file():
        raise EngineError(f"{out}: a DICOM series is written into a folder; give a folder name")
    # back to the acquisition grid and order (nearest neighbour is exact: the same lattice, axes permuted)
    real = np.asarray(volume.real(volume.voxels), dtype=np.float32)
    grid = resample_labels(real, volume.geometry, source.source_geometry, source.source_shape)
    slope, intercept = 1.0, -1024.0
    stored = np.clip(np.rint((grid - intercept) / slope), -32768, 32767).astype(np.int16)
    series_uid = generate_uid()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    written = []
    try:
        slots = [(k, ref) for k, ref in enumerate(series.slots) if ref is not None]
        for n, (k, ref) in enumerate(slots):
            ds = ref.header.copy()
            ds.file_meta = ref.header.file_meta.copy() if hasattr(ref.header, "file_meta") else None
            for kw in ("LargestImagePixelValue", "SmallestImagePixelValue", "PixelPaddingValue",
                       "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "NumberOfFrames",
                       "WindowCenterWidthExplanation"):
                if kw in ds:
                    delattr(ds, kw)
            sop = generate_uid()
            if ds.file_meta is None:
                from pydicom.dataset import FileMetaDataset

                ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            ds.SOPInstanceUID = sop
            ds.SeriesInstanceUID = series_uid
            ds.SeriesDescription = description[:64]
            ds.SeriesNumber = int(series.series_number or 0) + series_number_offset
            ds.ImageType = ["DERIVED", "SECONDARY"]
            ds.DerivationDescription = (derivation or description)[:1024]
            ds.InstanceNumber = n + 1
            ds.ImagePositionPatient = [float(v) for v in ref.position] if ref.position is not None else \
                ds.get("ImagePositionPatient")
            if ref.orientation is not None:
                ds.ImageOrientationPatient = [float(v) for v in ref.orientation]
            ds.PixelSpacing = [float(ref.pixel_spacing[0]), float(ref.pixel_spacing[1])]
            ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
            ds.RescaleType = "HU"
            ds.PixelData = stored[k].tobytes()
            ds["PixelData"].VR = "OW"
            path = tmp / f"IM{n + 1:05d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            written.append(out / path.name)
            progress((n + 1) / len(slots), f"writing slice {n + 1}/{len(slots)}")
        backup = None
        if out.exists():
            backup = out.with_name(f".{out.name}.old")
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(out, backup)
        os.replace(tmp, out)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return written


def write_volume_file(volume, out: Path) -> list[Path]:
    """A Volume's real values (float32) as NIfTI/MHA/NRRD with its geometry (atomic)."""
    import SimpleITK as sitk

    from engines.core.atomic import atomic_path

    image = volume.geometry.to_sitk(np.asarray(volume.real(volume.voxels), dtype=np.float32))
    with atomic_path(out) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    return [Path(out)]


def preflight_volume(request: Mapping[str, Any], contract: Callable[[Any, np.ndarray], Any]):
    """An engine's ``preflight``: read the request's volume and run ``contract(volume, real-valued voxels)``
    without inference. Never raises for a bad input: a refusal comes back as a refused check."""
    from engines.core.checks import Check, Checks, InputRefused

    try:
        volume = input_volume(request)
        return contract(volume, np.asarray(volume.real(volume.voxels), dtype=np.float32))
    except InputRefused as exc:
        return Checks(list(exc.checks))
    except EngineError as exc:
        return Checks([Check("input", "refused", str(exc))])

