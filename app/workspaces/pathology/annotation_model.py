"""The annotation list as a virtual model over the store: rows are described only when they are shown, so a
slide with a million annotations lists as fast as one with ten (one QListWidgetItem each took minutes)."""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt


class AnnotationListModel(QAbstractListModel):
    """Rows are ``store.items``; DisplayRole is "name [class] · area", UserRole the annotation's id."""

    def __init__(self, store, mpp: Callable[[], float | None], parent=None) -> None:
        super().__init__(parent)
        self.store = store
        self._mpp = mpp

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.store.items)

    def data(self, index, role: int = Qt.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self.store.items):
            return None
        a = self.store.items[index.row()]
        if role == Qt.UserRole:
            return a.id
        if role == Qt.DisplayRole:
            area = a.area_px()
            mpp = self._mpp()
            size = f"{area * mpp * mpp / 1e6:.4f} mm²" if mpp and area else (f"{area:,.0f} px²" if area else "")
            return f"{a.name or a.shape}" + (f" [{a.cls}]" if a.cls else "") + (f" · {size}" if size else "")
        return None

    def refresh(self) -> None:
        """The store changed: rows are re-read lazily (a reset costs nothing per row)."""
        self.beginResetModel()
        self.endResetModel()
