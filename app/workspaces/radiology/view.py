"""The radiology workspace view (an honest empty view until its issue fills it)."""
from app.workspaces.base import PlaceholderView


class RadiologyWorkspace(PlaceholderView):
    pass
