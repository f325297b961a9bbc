"""Per-hospital shards: reading, validation, scaling and TFF client data."""
