"""Differential privacy: the privacy plan (budget), its accounting, DP-SGD and the private processes."""
