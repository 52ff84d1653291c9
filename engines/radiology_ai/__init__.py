"""Radiology AI engines: CT kernel conversion (seed 5.9) and SE U-Net lesion segmentation (seed 5.5).

Imports stay light (no torch): the networks are built when an engine is loaded.
"""
from engines.core.domains import DomainManifest
from engines.radiology_ai.kernel_engine import KernelConversionEngine, LinearKernelConversionEngine
from engines.radiology_ai.haemorrhage import HaemorrhageDetectorEngine, HaemorrhageThresholdEngine
from engines.radiology_ai.lesion_engine import LesionSegmentationPlainEngine, LesionSegmentationSEEngine

ENGINES: list = [KernelConversionEngine, LinearKernelConversionEngine, LesionSegmentationSEEngine,
                  LesionSegmentationPlainEngine, HaemorrhageDetectorEngine, HaemorrhageThresholdEngine]

# What this domain gives the core (samples, `inspect` describers, readers), found through the
# csi_workstation.domains entry point; each reference is imported only when it is used.
DOMAIN = DomainManifest(id="radiology_ai", samples="engines.radiology_ai.samples:SAMPLES")
