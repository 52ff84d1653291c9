"""The radiology workspace's questions to the user (kept apart so tests can answer them)."""
from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget


def confirm_discard_edits(parent: QWidget, layer_names: list[str], what: str) -> bool:
    """Ask before an image with label edits that were never exported is replaced by ``what``."""
    names = ", ".join(f"'{n}'" for n in layer_names[:4]) + (" …" if len(layer_names) > 4 else "")
    answer = QMessageBox.question(
        parent, "Open another image?",
        f"The label edits in {names} have not been exported.\n\nOpen {what} and close this image? Its edits "
        f"stay in the autosave and come back when this series is opened again.",
        QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
    return answer == QMessageBox.Yes
