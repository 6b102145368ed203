"""Benchmarks: each script measures one path against its limit or a peer (see README.md)."""
