"""What users read about an engine speaks of its method and data, never of the research summary's section numbers."""
from __future__ import annotations

import re

SECTION = re.compile(r"\b(seed|section)\s*\d|§\s*\d", re.IGNORECASE)


def test_no_engine_description_cites_a_section_number():
    from engines.core.registry import EngineRegistry

    registry = EngineRegistry.discover()
    offending = {}
    for engine_id in registry.ids():
        info = registry.get(engine_id).info()
        for text in (info.title, info.description, info.task):
            if SECTION.search(text or ""):
                offending[engine_id] = text
    assert not offending, offending
