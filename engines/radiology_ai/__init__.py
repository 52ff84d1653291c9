"""Radiology AI engines: CT kernel conversion (seed 5.9) and SE U-Net lesion segmentation (seed 5.5)."""

ENGINES: list = []
