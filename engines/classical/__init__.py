"""Classical methods registered as engines, so users can compare them with the networks side by side."""
from engines.classical.otsu import OtsuSegmentationEngine

ENGINES = [OtsuSegmentationEngine]
