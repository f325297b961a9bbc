"""Per-hospital shards as NumPy arrays and files: reading, validation, splitting, scaling."""
