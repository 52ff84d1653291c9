"""Everything that computes: readers, writers, models, training and evaluation. Never imports Qt."""
