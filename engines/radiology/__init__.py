"""Radiology engines (filled in by the radiology workspace work)."""

ENGINES: list = []
