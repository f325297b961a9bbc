"""The research protocol: local vs pooled vs federated, clinical metrics, reports."""
