"""Cross-institution runs: one TFF worker per hospital, data read where it lives, mutual TLS."""
