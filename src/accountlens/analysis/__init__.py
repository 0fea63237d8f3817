"""Multi-user analyses (handoffs, collaboration, sequences, paths, champions) behind one registry
(analysis/registry.py)."""
