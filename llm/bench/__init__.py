"""Benchmarks behind `python -m launch.bench`: matmul peak, training and decoding speed."""
