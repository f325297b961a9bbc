"""The run sequence every route shares: prepare, loop over rounds, stop, write outputs."""
