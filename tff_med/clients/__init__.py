"""Where shards become TFF clients: per-round datasets, shards resident in the worker, federated moments."""
