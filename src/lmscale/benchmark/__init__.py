"""Benchmarks of fitting speed and held-out accuracy (run with ``lmscale benchmark``)."""
