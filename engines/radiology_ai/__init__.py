"""Radiology AI engines: CT kernel conversion (seed 5.9) and SE U-Net lesion segmentation (seed 5.5).

Imports stay light (no torch): the networks are built when an engine is loaded.
"""
from engines.radiology_ai.kernel_engine import KernelConversionEngine, LinearKernelConversionEngine
from engines.radiology_ai.haemorrhage import HaemorrhageDetectorEngine, HaemorrhageThresholdEngine
from engines.radiology_ai.lesion_engine import LesionSegmentationPlainEngine, LesionSegmentationSEEngine

ENGINES: list = [KernelConversionEngine, LinearKernelConversionEngine, LesionSegmentationSEEngine,
                  LesionSegmentationPlainEngine, HaemorrhageDetectorEngine, HaemorrhageThresholdEngine]
