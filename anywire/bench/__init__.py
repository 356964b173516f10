"""Benchmarks: the `anywire bench` tool, its load generator and the server it loads."""
