from app.workspaces.manifest import WorkspaceManifest

MANIFEST = WorkspaceManifest(
    id="radiology",
    title="Radiology",
    summary="CT and MRI series with AI overlays",
    view="app.workspaces.radiology.view:RadiologyWorkspace",
    opens={"dicom": 10, "dicom-folder": 10, "dicom-seg": 10, "dicom-sr": 10, "dicom-rtstruct": 10,
           "volume": 10, "volume-folder": 10},
    sample="ct-series",
    order=10,
    icon="radiology.svg",
    will_hold=(
        "DICOM folders, DICOMDIR, Enhanced CT/MR and NIfTI/MHA/NRRD volumes, sorted by position",
        "axial, coronal and sagittal views with linked crosshair, W/L presets, rulers and ROIs",
        "overlay layers: segmentation label maps (DICOM SEG), detection boxes, kernel-conversion comparison",
    ),
)
