from app.workspaces.manifest import WorkspaceManifest

MANIFEST = WorkspaceManifest(
    id="radiology",
    title="Radiology",
    summary="CT and MRI series with AI overlays",
    view="app.workspaces.radiology.view:RadiologyWorkspace",
    opens={"dicom": 10, "dicom-folder": 10, "dicom-seg": 10, "dicom-sr": 10, "dicom-rtstruct": 10,
           "volume": 10, "volume-folder": 10},
    sample="lung1-ct",
    samples=(("lung1-ct", "Real chest CT with its nodule mask (pyradiomics lung1)"),
             ("ct-series", "Generated chest-abdomen CT (96 slices)"),
             ("mr-brain", "MNI152 brain MR with tissue labels")),
    sample_fallbacks=("ct-series",),
    order=10,
    icon="radiology.svg",
    will_hold=(
        "DICOM folders, DICOMDIR, Enhanced CT/MR and NIfTI/MHA/NRRD volumes, sorted by position",
        "axial, coronal and sagittal views with linked crosshair, W/L presets, rulers and ROIs",
        "overlay layers: segmentation label maps (DICOM SEG), detection boxes, kernel-conversion comparison",
    ),
)
