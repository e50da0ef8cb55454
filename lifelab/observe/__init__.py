"""What the runtime measures of itself: stage timings, RSS and GC (metrics.py, gcmode.py).

The runtime imports this package, so it imports nothing from lifelab's other packages; the
benchmarks and profilers that drive a Life live in :mod:`lifelab.lab`.
"""
