"""Radiology engines: readers and writers live beside them (reader.py, overlays.py, geometry.py)."""
from engines.core.domains import DomainManifest
from engines.radiology.ct_tissue import CtTissueThresholdEngine

ENGINES: list = [CtTissueThresholdEngine]

# What this domain gives the core (samples, `inspect` describers, readers), found through the
# csi_workstation.domains entry point; each reference is imported only when it is used.
DOMAIN = DomainManifest(
    id="radiology",
    samples="engines.radiology.samples:SAMPLES",
    describers="engines.radiology.describers:DESCRIBERS",
    readers={"dicom": "engines.radiology.reader:scan_dicom", "dicom-folder": "engines.radiology.reader:scan_dicom",
             "volume": "engines.radiology.reader:load_volume_file",
             "volume-folder": "engines.radiology.reader:load_volume_folder"},
)
