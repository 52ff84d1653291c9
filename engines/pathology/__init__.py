"""Pathology engines: slide access, the tile pipeline and the C4d engines (no Qt; torch only on load)."""
from engines.pathology.c4d import C4dCnnEngine, C4dDeconvolutionEngine

ENGINES: list = [C4dDeconvolutionEngine, C4dCnnEngine]
