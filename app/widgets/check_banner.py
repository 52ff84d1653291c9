"""One banner for every workspace: a result's input-contract warnings (engines.core.checks) shown above what it
drew, and in Messages. Never silent: an engine that was given something it was not made for says so here."""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtWidgets import QBoxLayout, QLabel, QWidget

BANNER_STYLE = ("QLabel { background: #fff4c2; color: #4a3b00; border: 1px solid #e0c060; border-radius: 3px; "
                "padding: 4px 6px; }")


def make_banner() -> QLabel:
    banner = QLabel("")
    banner.setWordWrap(True)
    banner.setStyleSheet(BANNER_STYLE)
    banner.setVisible(False)
    return banner


def banner_before(widget: QWidget) -> QLabel:
    """A hidden banner placed just above ``widget`` in its parent's box layout (or floating if it has none)."""
    banner = make_banner()
    parent = widget.parentWidget()
    layout = parent.layout() if parent is not None else None
    if isinstance(layout, QBoxLayout):
        index = layout.indexOf(widget)
        layout.insertWidget(max(index, 0), banner)
    else:
        banner.setParent(parent)
    return banner


def show_result_checks(banner: QLabel, title: str, result: Any,
                       notify: Callable[[str, str, str], None]) -> list[str]:
    """Show the result's checks that did not pass as a banner and in Messages; hide the banner otherwise."""
    from engines.core.checks import warning_lines

    lines = warning_lines(result)
    if lines:
        banner.setText(f"<b>{title}: check this result.</b> " + " ".join(lines))
        banner.setToolTip("\n".join(lines))
        for line in lines:
            notify("warning", f"{title}: {line}", "")
    else:
        banner.clear()
    banner.setVisible(bool(lines))
    return lines
