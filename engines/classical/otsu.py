"""Otsu threshold segmentation: a classical baseline label map for any 2-D or 3-D image."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.core.atomic import atomic_path
from engines.core.engine import CancelToken, EngineError, EngineInfo, ProgressFn
from engines.core.model_engine import PipelineEngine
from engines.core.results import SegmentationResult

OUTPUT_SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd", ".png")


@dataclass
class OtsuResult(SegmentationResult):
    """The Otsu label map: ``mask`` (SimpleITK, the input's geometry), its threshold and the reader's findings."""

    mask: Any = None
    threshold: float = 0.0
    foreground_fraction: float = 0.0
    components: int = 0
    findings: list[str] = field(default_factory=list)


# the radiology view and batch runs still test results with isinstance(result, Mapping); this one answers
# result["key"] / result.get("key") like a mapping (engines.core.results)
Mapping.register(OtsuResult)


class OtsuSegmentationEngine(PipelineEngine):
    """Foreground/background by Otsu's threshold, small islands removed; keeps the image geometry.

    prepare reads the image (through the radiology reader for volumes and DICOM, keeping its findings),
    infer thresholds and removes small islands, finish returns an ``OtsuResult``."""

    id = "otsu-segmentation"

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="Otsu threshold segmentation", task="segmentation", workspace="radiology",
            inputs="one image readable by SimpleITK (DICOM file or series folder, NIfTI, MHA, NRRD, PNG)",
            outputs="label map (0 background, 1 foreground) on the input grid; .nii.gz, .mha, .nrrd or .png",
            labels=("background", "foreground"),
            description="Classical baseline: Otsu's histogram threshold, then connected components smaller "
                        "than min_voxels are removed. No weights.",
            extra={"self_test_out": "mask.nii.gz"})

    input_key = "image_path"
    input_noun = "input image"
    sample_id = "ct-slice"

    def prepare(self, request: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken):
        image = request.get("image")
        findings: list[str] = []
        if image is None:
            progress(0.05, "reading image")
            image, findings = read_image_with_findings(Path(request["image_path"]))
        return image, findings, int(request.get("min_voxels", 20))

    def infer(self, inputs, *, progress: ProgressFn, cancel: CancelToken):
        import SimpleITK as sitk

        image, _, min_voxels = inputs
        progress(0.3, "computing Otsu threshold")
        scalar = sitk.Cast(image, sitk.sitkFloat32) if image.GetNumberOfComponentsPerPixel() == 1 else \
            sitk.Cast(sitk.VectorMagnitude(image), sitk.sitkFloat32)
        otsu = sitk.OtsuThresholdImageFilter()
        otsu.SetInsideValue(0)
        otsu.SetOutsideValue(1)
        mask = otsu.Execute(scalar)
        cancel.raise_if_cancelled()
        progress(0.7, "removing small islands")
        relabel = sitk.RelabelComponent(sitk.ConnectedComponent(mask), minimumObjectSize=min_voxels)
        progress(1.0, "done")
        return relabel, float(otsu.GetThreshold())

    def finish(self, outputs, inputs, request: Mapping[str, Any]) -> OtsuResult:
        import SimpleITK as sitk

        relabel, threshold = outputs
        image, findings, _ = inputs
        mask = sitk.Cast(relabel > 0, sitk.sitkUInt8)
        mask.CopyInformation(image)
        fraction = float(sitk.GetArrayViewFromImage(mask).mean())
        n = int(relabel_count(relabel))
        return OtsuResult(engine=self.id, device="cpu", mask=mask, threshold=threshold,
                          foreground_fraction=fraction, components=n, findings=findings,
                          label_names={1: "foreground"}, counts={"components": n}, source=image,
                          scores={"threshold": threshold})

    def write_result(self, result: Mapping[str, Any], out: Path) -> list[Path]:
        import SimpleITK as sitk

        out = Path(out)
        if not any(out.name.lower().endswith(s) for s in OUTPUT_SUFFIXES):
            raise EngineError(f"--out must end with one of {', '.join(OUTPUT_SUFFIXES)}")
        mask = result["mask"]
        if out.name.lower().endswith(".png"):
            if mask.GetDimension() != 2 and mask.GetSize()[2] != 1:
                raise EngineError("a 3-D label map cannot be written as PNG: use .nii.gz")
            mask = mask[:, :, 0] if mask.GetDimension() == 3 else mask
            mask = sitk.Cast(mask * 255, sitk.sitkUInt8)
        with atomic_path(out) as tmp:
            sitk.WriteImage(mask, str(tmp), useCompression=True)
        return [out]


def relabel_count(labels) -> int:
    import SimpleITK as sitk

    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    return len(stats.GetLabels())


def read_image_with_findings(path: Path):
    """(SimpleITK image, the reader's findings). Volumes and DICOM go through the radiology reader, which checks
    declared sizes against the bytes present (a file cut short is refused or reported, never read as zeros);
    other images (PNG, JPEG, TIFF) are read by SimpleITK."""
    from engines.core.filetypes import classify

    if path.exists() and classify(path) in ("volume", "dicom", "dicom-folder"):
        from engines.radiology.ct_tissue import open_volume

        volume = open_volume(path)
        return volume.to_sitk_real(), [str(f) for f in volume.findings]
    return read_image(path), []


def read_image(path: Path):
    """Read one image with SimpleITK; a folder is read as a DICOM series (first series found)."""
    import SimpleITK as sitk

    if not path.exists():
        raise EngineError(f"{path}: no such file or folder")
    try:
        if path.is_dir():
            ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
            if not ids:
                raise EngineError(f"{path}: no DICOM series in this folder")
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), ids[0]))
            return reader.Execute()
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise EngineError(f"{path.name}: SimpleITK cannot read this image ({last})") from None
