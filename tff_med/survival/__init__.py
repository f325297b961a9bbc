"""Survival analysis across hospitals: the Cox loss, the C-index, federated Kaplan–Meier."""
