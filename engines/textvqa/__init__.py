"""Textvqa engines (filled in by the textvqa workspace work)."""

ENGINES: list = []
