"""Where the learning process is built: models, TFF algorithms and aggregators, attacks, the fused engine, DP."""
