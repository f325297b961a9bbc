"""Secure aggregation by pairwise masking: the coordinator sees only the hospitals' sum.

Bonawitz et al. (CCS 2017), as Fed-BioMed's LOM and Flower's SecAgg+ build it,
for a consortium of hospitals: `masks` derives each hospital's mask from X25519
agreements with every other hospital of the round (ChaCha20 expands them), so
the masks of a round cancel in the sum; `aggregator` is the TFF aggregation
factory that clips, quantizes, adds the mask modulo 2^k at the hospital and
decodes the sum at the server; `client_work` carries each hospital's mask into
the round beside its data; `settings` checks a config before the first round.
TFF has only an emulation (its secure-sum intrinsics run in its test context,
in the clear); this package is ours.
"""
