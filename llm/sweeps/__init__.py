"""Hyperparameter sweeps: search spaces, running every point, and collecting the results."""

from llm.sweeps.collect import collect, write_results
from llm.sweeps.run import load_sweep, plan_sweep, prepare_data, run_local, run_point
from llm.sweeps.space import choice, grid, log_uniform, product, random_search, uniform, zipped

__all__ = [
    "choice",
    "collect",
    "grid",
    "load_sweep",
    "log_uniform",
    "plan_sweep",
    "prepare_data",
    "product",
    "random_search",
    "run_local",
    "run_point",
    "uniform",
    "write_results",
    "zipped",
]
