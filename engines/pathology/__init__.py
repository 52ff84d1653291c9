"""Pathology engines: slide access, the tile pipeline and the C4d engines (no Qt; torch only on load)."""
from engines.core.domains import DomainManifest
from engines.pathology.c4d import C4dCnnEngine, C4dDeconvolutionEngine

ENGINES: list = [C4dDeconvolutionEngine, C4dCnnEngine]

# What this domain gives the core (samples, `inspect` describers, readers), found through the
# csi_workstation.domains entry point; each reference is imported only when it is used.
DOMAIN = DomainManifest(
    id="pathology",
    samples="engines.pathology.samples:SAMPLES",
    describers="engines.pathology.describers:DESCRIBERS",
    readers={"slide": "engines.pathology.slide:open_slide", "dicom-slide": "engines.pathology.slide:open_slide",
             "image": "engines.pathology.slide:open_slide", "annotations": "engines.pathology.geojson:load_geojson"},
)
