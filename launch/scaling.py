"""Fit scaling laws (Chinchilla approaches 3 and 2) to a finished sweep's final losses.

  python -m launch.scaling --sweep_dir=DIR [--budget_flops=1e21] [--bootstrap=200] [--out=DIR]
--sweep_dir may also be a CSV file with columns N, D, loss[, budget]. Writes scaling.json,
scaling_loss_vs_n.png and scaling_isoflops.png into the sweep directory (or --out).
"""

from __future__ import annotations

import json
import pathlib

from absl import flags

from launch.cli import run_main
from llm.errors import ConfigError
from llm.sweeps import scaling

_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "Sweep directory (or an N,D,loss CSV).")
_BUDGET = flags.DEFINE_float("budget_flops", None, "FLOP budget C for the compute-optimal N, D.")
_BOOTSTRAP = flags.DEFINE_integer("bootstrap", 200, "Bootstrap resamples (0 = no intervals).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the bootstrap resampling.")
_RTOL = flags.DEFINE_float("isoflop_rtol", 0.1, "Runs whose 6ND differ by less share a budget.")
_OUT = flags.DEFINE_string("out", "", "Output directory (default: the sweep directory).")


def _interval(report: dict, key: str) -> str:
    bounds = report.get("intervals", {}).get(key)
    return f"  [{bounds[0]:.4g}, {bounds[1]:.4g}]" if bounds else ""


def main(argv: list[str]) -> None:
    del argv
    if not _SWEEP_DIR.value:
        raise ConfigError("Give --sweep_dir=DIR (a sweep planned by launch.sweep, or a CSV).")
    if _BOOTSTRAP.value < 0:
        raise ConfigError(f"--bootstrap={_BOOTSTRAP.value} must be >= 0 (0 = no intervals).")
    if _BUDGET.value is not None and _BUDGET.value <= 0:
        raise ConfigError(f"--budget_flops={_BUDGET.value} must be positive, e.g. 1e21.")
    source = pathlib.Path(_SWEEP_DIR.value)
    if source.suffix == ".csv":
        runs = scaling.runs_from_csv(source)
    else:
        runs = scaling.runs_from_sweep(source)
    out = pathlib.Path(_OUT.value or (source.parent if source.suffix == ".csv" else source))
    out.mkdir(parents=True, exist_ok=True)
    report = scaling.analyse(
        runs,
        budget_flops=_BUDGET.value,
        resamples=_BOOTSTRAP.value,
        seed=_SEED.value,
        rtol=_RTOL.value,
    )
    fit3 = report["approach3"]
    best = scaling.Fit(**{k: fit3[k] for k in scaling.PARAMS})
    groups = scaling.isoflops(runs, _RTOL.value)
    print(f"{len(runs)} runs. Approach 3: L(N, D) = E + A/N^alpha + B/D^beta")
    span = report.get("intervals", {}).get("resamples", 0)
    print(f"  {'':6} {'fit':>10}  {'5-95% (' + str(span) + ' resamples)':>24}  Chinchilla")
    for key in scaling.PARAMS:
        chin = scaling.CHINCHILLA[key]
        print(f"  {key:6} {fit3[key]:>10.4g}{_interval(report, key):>26}  {chin:g}")
    if fit3["at_bounds"]:
        print(
            f"  warning: {', '.join(fit3['at_bounds'])} at the edge of the fit's box: the runs "
            "do not pin it down (E at its floor: the losses are far above the irreducible loss)."
        )
    two = report["approach2"]
    if "a" in two:
        print(
            f"Approach 2 (IsoFLOP, {len(two['budgets'])} budgets): N* ~ C^{two['a']:.3f}, "
            f"D* ~ C^{two['b']:.3f} (approach 3 gives {fit3['a']:.3f}, {fit3['b']:.3f}; "
            "Chinchilla 0.50, 0.50)"
        )
    else:
        print(f"Approach 2 (IsoFLOP): skipped: {two['skipped']}.")
    for edge in two["unbracketed"]:
        print(
            f"  budget {edge['flops']:.3g}: the best run is N={edge['best_n']:.3g} at an edge of "
            f"its sizes (parabola minimum {edge['n_star']:.3g}); extend the sizes that way."
        )
    if "compute_optimal" in report:
        opt = report["compute_optimal"]
        ranges = ""
        if "N_interval" in opt:
            ranges = (
                f" (5-95%: N {opt['N_interval'][0]:.3g}..{opt['N_interval'][1]:.3g}, "
                f"D {opt['D_interval'][0]:.3g}..{opt['D_interval'][1]:.3g})"
            )
        print(
            f"Compute-optimal at C={opt['flops']:.3g} FLOPs: N={opt['N']:.3g} parameters, "
            f"D={opt['D']:.3g} tokens ({opt['D'] / opt['N']:.1f} tokens per parameter){ranges}"
        )
    (out / "scaling.json").write_text(json.dumps(report, indent=2))
    written = [
        out / "scaling.json",
        scaling.plot_loss_vs_n(runs, best, out / "scaling_loss_vs_n.png"),
        scaling.plot_isoflops(groups, out / "scaling_isoflops.png"),
    ]
    print("Wrote:")
    for path in written:
        print(f"  {path}")


if __name__ == "__main__":
    run_main(main)
