"""Radiology engines: readers and writers live beside them (reader.py, overlays.py, geometry.py)."""
from engines.radiology.ct_tissue import CtTissueThresholdEngine

ENGINES: list = [CtTissueThresholdEngine]
