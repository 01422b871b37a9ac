"""Every benchmark, behind `python -m launch.bench` (suites): matmul peak, training, data, decoding."""
