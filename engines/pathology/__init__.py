"""Pathology engines (filled in by the pathology workspace work)."""

ENGINES: list = []
