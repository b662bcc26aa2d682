"""The PostgreSQL benchmark of issue 6: data generation now, measurement next (see bench/README.md).

Run as ``python -m bench.generate``; nothing in the application imports this package, and pytest does
not collect it (``testpaths = ["tests"]``).
"""
