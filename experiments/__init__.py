"""Experiment configs, one file each (`python -m launch.list`); files named `_*.py` are helpers."""
