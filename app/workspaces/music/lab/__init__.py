"""The music lab panel (harmonizer, melody generator, covers), mounted as a tab of the music workspace."""
from app.workspaces.music.lab.panel import MusicLabPanel

__all__ = ["MusicLabPanel"]
