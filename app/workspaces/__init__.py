"""Workspaces: discovered through the ``csi_workstation.workspaces`` entry points (light manifests only)."""
