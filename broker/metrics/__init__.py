"""Prometheus metrics of every regionlink process, from one catalog (`catalog.py`).

It lives in `broker/`, the lowest layer, so brokers, controllers, mirror workers and the
supervisor all describe and serve their metrics the same way without import cycles.
Submodules are imported directly: a process loads only what it serves.
"""
