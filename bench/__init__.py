"""Benchmarks (not tests): each module is runnable with ``python -m bench.<name>``."""
