"""CSI Workstation: the Qt shell and the workspaces' views. torch is imported only lazily."""
__version__ = "0.1.0"
