"""tdt benchmarks: performance targets live here, not in timed unit tests."""
