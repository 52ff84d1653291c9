"""Shell widgets: task panel, notification area."""
