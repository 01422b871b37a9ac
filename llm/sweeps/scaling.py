"""Scaling-law fits of a sweep's final losses: Chinchilla approaches 2 (IsoFLOP) and 3.

Hoffmann et al. 2022 (Chinchilla), approach 3: L(N, D) = E + A / N^alpha + B / D^beta,
fitted by minimising the Huber loss (delta 1e-3) of log-space residuals
LSE(a - alpha log N, b - beta log D, e) - log L with L-BFGS from a grid of starts, where
A = exp(a), B = exp(b), E = exp(e). Approach 2: per FLOP budget C = 6 N D, a parabola of
loss against log N gives the best N*; N* ~ C^a and D* ~ C^b are fitted in log space.
N counts non-embedding parameters (Kaplan et al. 2020), D the tokens trained.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.optimize

from llm.errors import ConfigError, InputFileError, InputFileNotFoundError
from llm.sweeps.run import STATUS_FILE, final_metrics, read_plan

PARAMS = ("E", "A", "B", "alpha", "beta")
# Hoffmann et al. 2022, approach 3 (their table A3 / equation 10).
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
HUBER_DELTA = 1e-3
# A box for L-BFGS-B in (a, b, e, alpha, beta): wide enough to hold any real fit, tight enough
# that E = exp(e) cannot underflow to 0 when the runs are far above the irreducible loss (E
# then sits on its lower edge, and Fit.at_bounds says so).
_BOUNDS = [(-50.0, 100.0), (-50.0, 100.0), (-10.0, 10.0), (0.0, 5.0), (0.0, 5.0)]
_THETA = ("A", "B", "E", "alpha", "beta")
# Starts of the L-BFGS runs, in the fitted (a, b, e, alpha, beta) space: Chinchilla's grid
# (alpha, beta in 0..2, e in -1..1.5, a, b in 0..25), a little coarser.
_GRID = {
    "a": np.arange(0.0, 26.0, 5.0),
    "b": np.arange(0.0, 26.0, 5.0),
    "e": np.arange(-1.0, 1.6, 0.5),
    "alpha": np.arange(0.0, 2.1, 0.5),
    "beta": np.arange(0.0, 2.1, 0.5),
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished run: non-embedding parameters N, tokens trained D, final loss."""

    n: float
    d: float
    loss: float
    budget: float | None = None  # an explicit FLOP budget (IsoFLOP group); None = 6 N D
    name: str = ""

    @property
    def flops(self) -> float:
        """The run's training compute C = 6 N D."""
        return 6.0 * self.n * self.d


@dataclasses.dataclass(frozen=True)
class Fit:
    """The fitted constants of L(N, D) = E + A / N^alpha + B / D^beta."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float = 0.0  # the summed Huber loss at the optimum
    at_bounds: tuple[str, ...] = ()  # constants the fit pinned to an edge of its box

    def loss(self, n: Any, d: Any) -> Any:
        """The predicted loss at N parameters and D tokens (arrays broadcast)."""
        return self.E + self.A / np.power(n, self.alpha) + self.B / np.power(d, self.beta)

    def as_dict(self) -> dict[str, float]:
        """The five constants by name."""
        return {k: float(getattr(self, k)) for k in PARAMS}


# --- reading runs ---------------------------------------------------------------------


def non_embedding_params(model_cfg: Mapping[str, Any]) -> int:
    """Parameters of a model config less its vocabulary and position tables (Kaplan's N)."""
    import flax.linen as nn
    import jax

    from llm import models

    cfg = models.as_config(model_cfg)
    shapes = jax.eval_shape(lambda rng: models.init_variables(cfg, rng), jax.random.key(0))
    params = nn.meta.unbox(shapes["params"])
    total = models.count_params(cfg)
    # Embedding tables are nn.Embed's `embedding` leaves (token, position, token type);
    # the output projection and its vocab-sized biases belong to the vocabulary too.
    vocab = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        names = [str(getattr(k, "key", k)) for k in path]
        if names[-1] in ("embedding", "logits_bias", "mlm_bias") or "lm_head" in names:
            vocab += math.prod(leaf.shape)
    return total - vocab


def tokens_trained(config: Mapping[str, Any]) -> int:
    """D of a resolved config: train.steps x train.batch_size x the row's token count."""
    import ml_collections

    from llm.data.config import sequence_lengths

    lengths = sequence_lengths(ml_collections.ConfigDict(dict(config["data"])))
    return int(config["train"]["steps"]) * int(config["train"]["batch_size"]) * sum(lengths)


def _final_loss(workdir: pathlib.Path) -> float | None:
    metrics = final_metrics(workdir)
    for key in ("eval/loss", "loss"):  # runs without eval still have a train loss
        if key in metrics:
            return float(metrics[key])
    return None


def runs_from_sweep(root: str | pathlib.Path) -> list[Run]:
    """The ok runs of a planned sweep directory, N and D from each workdir's config.json."""
    root = pathlib.Path(root)
    plan = read_plan(root)
    runs, cache = [], {}
    for point in plan["points"]:
        workdir = pathlib.Path(point["workdir"])
        status_path = workdir / STATUS_FILE
        if not status_path.is_file() or json.loads(status_path.read_text())["returncode"] != 0:
            continue  # not run or failed: collect's table shows why
        config_path = workdir / "config.json"
        if not config_path.is_file():
            raise InputFileNotFoundError(
                f"{config_path} not found; the run wrote no resolved config (rerun the point)."
            )
        loss = _final_loss(workdir)
        if loss is None:
            raise InputFileError(
                f"No eval/loss or loss in {workdir / 'metrics.jsonl'}; rerun the point or "
                "drop it from the sweep."
            )
        config = json.loads(config_path.read_text())
        # Points of a sweep share model shapes: count each distinct model once.
        key = json.dumps(config["model"], sort_keys=True)
        if key not in cache:
            cache[key] = non_embedding_params(config["model"])
        budget = point["overrides"].get("budget")
        runs.append(
            Run(
                n=float(cache[key]),
                d=float(tokens_trained(config)),
                loss=loss,
                budget=float(budget) if budget is not None else None,
                name=workdir.name,
            )
        )
    if not runs:
        raise InputFileError(
            f"No finished runs in {root} (none has status.json with returncode 0); "
            f"run the sweep first (python -m launch.sweep --collect={root} shows each point)."
        )
    return runs


def runs_from_rows(rows: Iterable[Sequence[float] | Mapping[str, Any]]) -> list[Run]:
    """Runs from (N, D, loss[, budget]) tuples or dicts with keys N, D, loss[, budget]."""
    runs = []
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            lower = {str(k).strip().lower(): v for k, v in row.items()}
            missing = [k for k in ("n", "d", "loss") if lower.get(k) in (None, "")]
            if missing:
                raise InputFileError(
                    f"Row {i} has no {', '.join(missing)}; give columns N, D, loss[, budget]."
                )
            values = [lower["n"], lower["d"], lower["loss"], lower.get("budget")]
        else:
            values = [*row, None][:4]
        n, d, loss = (float(v) for v in values[:3])
        if not (n > 0 and d > 0 and loss > 0 and math.isfinite(loss)):
            raise InputFileError(f"Row {i}: N={n}, D={d}, loss={loss}; all must be positive.")
        budget = float(values[3]) if values[3] not in (None, "") else None
        runs.append(Run(n=n, d=d, loss=loss, budget=budget, name=f"row {i}"))
    return runs


def runs_from_csv(path: str | pathlib.Path) -> list[Run]:
    """Runs from a CSV file with a header row: N, D, loss[, budget]."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"{path} not found.")
    with path.open(newline="") as f:
        return runs_from_rows(list(csv.DictReader(f)))


# --- designing a sweep ----------------------------------------------------------------


def isoflop_points(
    model: Mapping[str, Any],
    sizes: Sequence[Mapping[str, Any]],
    budgets: Sequence[float],
    tokens_per_step: int,
    *,
    min_steps: int = 20,
    max_steps: int = 5000,
    warmup_fraction: float = 0.1,
) -> list[dict[str, Any]]:
    """Sweep points training each size for D = C / 6N tokens at each FLOP budget C.

    `model` is the base model config, `sizes` its overrides ({'model.d_model': 64, ...}).
    A size runs at a budget only if that needs `min_steps` to `max_steps` steps, so the
    sizes slide up with the budget; the cosine schedule and warmup follow each run's length.
    """
    if tokens_per_step <= 0:
        raise ConfigError(f"tokens_per_step={tokens_per_step} must be positive.")
    if not sizes or not budgets:
        raise ConfigError("isoflop_points needs at least one size and one budget.")
    counts = []
    for size in sizes:
        bad = [k for k in size if not k.startswith("model.")]
        if bad:
            raise ConfigError(f"Sizes set model fields only ('model.d_model'), not {bad}.")
        counts.append(
            non_embedding_params(
                dict(model) | {k.removeprefix("model."): v for k, v in size.items()}
            )
        )
    points = []
    for budget in sorted(budgets):
        for size, n in zip(sizes, counts, strict=True):
            steps = round(budget / (6.0 * n * tokens_per_step))
            if min_steps <= steps <= max_steps:
                warmup = max(1, round(warmup_fraction * steps))
                points.append(dict(size) | {"train.steps": steps, "train.warmup_steps": warmup})
    if not points:
        raise ConfigError(
            f"No size fits {min_steps}-{max_steps} steps at budgets {list(budgets)}; "
            "widen the sizes or the budgets."
        )
    return points


# --- approach 3 -----------------------------------------------------------------------


def _objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray):
    """Summed Huber loss of the log residuals and its gradient, divided by delta^2.

    The Huber values are of order delta^2 = 1e-6; dividing keeps L-BFGS's gradient
    tolerance meaningful without changing the optimum.
    """
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    residual = top + np.log(total) - log_l
    weights /= total  # the softmax: d LSE / d term
    small = np.abs(residual) <= HUBER_DELTA
    huber = np.where(small, 0.5 * residual**2, HUBER_DELTA * (np.abs(residual) - 0.5 * HUBER_DELTA))
    slope = np.where(small, residual, HUBER_DELTA * np.sign(residual))
    grad = np.array(
        [
            np.sum(slope * weights[0]),
            np.sum(slope * weights[1]),
            np.sum(slope * weights[2]),
            -np.sum(slope * weights[0] * log_n),
            -np.sum(slope * weights[1] * log_d),
        ]
    )
    scale = HUBER_DELTA**2
    return float(huber.sum() / scale), grad / scale


def _grid_objective(grid: np.ndarray, log_n, log_d, log_l) -> np.ndarray:
    """_objective's value at each row of `grid` [starts, 5], in one vectorised pass."""
    a, b, e, alpha, beta = (grid[:, i, None] for i in range(5))
    lse = np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e)
    r = np.abs(lse - log_l)
    small = r <= HUBER_DELTA
    huber = np.where(small, 0.5 * r**2, HUBER_DELTA * (r - 0.5 * HUBER_DELTA))
    return huber.sum(axis=1) / HUBER_DELTA**2


def _grid_starts() -> np.ndarray:
    mesh = np.meshgrid(*(_GRID[k] for k in ("a", "b", "e", "alpha", "beta")), indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _check_enough(runs: Sequence[Run]) -> None:
    if len(runs) < len(PARAMS) + 1:
        raise InputFileError(
            f"{len(runs)} finished runs, but the fit has {len(PARAMS)} parameters: give at "
            f"least {len(PARAMS) + 1} runs (Chinchilla fitted hundreds), with several N and D."
        )
    if len({r.n for r in runs}) < 2 or len({r.d for r in runs}) < 2:
        raise InputFileError(
            "All runs share one N or one D, so alpha or beta is not identifiable: sweep "
            "both model size and tokens."
        )


def fit(runs: Sequence[Run], *, starts: np.ndarray | None = None, keep: int = 10) -> Fit:
    """Approach 3: the L-BFGS fit of the best `keep` grid starts (or the given starts)."""
    _check_enough(runs)
    log_n = np.log([r.n for r in runs])
    log_d = np.log([r.d for r in runs])
    log_l = np.log([r.loss for r in runs])
    if starts is None:
        # Evaluating the whole grid is cheap; L-BFGS from every point of it is not.
        grid = _grid_starts()
        values = _grid_objective(grid, log_n, log_d, log_l)
        starts = grid[np.argsort(values)[:keep]]
    best = None
    for start in starts:
        result = scipy.optimize.minimize(
            _objective,
            start,
            args=(log_n, log_d, log_l),
            jac=True,
            method="L-BFGS-B",
            bounds=_BOUNDS,
            options={"maxiter": 2000, "gtol": 1e-9, "ftol": 1e-12},
        )
        if best is None or result.fun < best.fun:
            best = result
    a, b, e, alpha, beta = best.x
    edges = tuple(
        name
        for name, value, (low, high) in zip(_THETA, best.x, _BOUNDS, strict=True)
        if min(value - low, high - value) < 1e-6
    )
    return Fit(
        E=math.exp(e),
        A=math.exp(a),
        B=math.exp(b),
        alpha=float(alpha),
        beta=float(beta),
        objective=float(best.fun) * HUBER_DELTA**2,
        at_bounds=edges,
    )


def _theta(f: Fit) -> np.ndarray:
    return np.array([math.log(f.A), math.log(f.B), math.log(f.E), f.alpha, f.beta])


def bootstrap(runs: Sequence[Run], best: Fit, *, resamples: int = 200, seed: int = 0) -> list[Fit]:
    """Fits of `resamples` resamplings of the runs (with replacement), seeded."""
    rng = np.random.default_rng(seed)
    # Each refit starts at the full data's optimum, which a resample's lies near: the
    # whole grid again would cost 10 L-BFGS runs per resample instead of one.
    starts = _theta(best)[None]
    fits = []
    for _ in range(resamples):
        sample = [runs[i] for i in rng.integers(0, len(runs), size=len(runs))]
        if len({r.n for r in sample}) < 2 or len({r.d for r in sample}) < 2:
            continue  # a degenerate resample identifies neither exponent
        fits.append(fit(sample, starts=starts))
    return fits


def intervals(fits: Sequence[Fit], low: float = 5.0, high: float = 95.0) -> dict[str, list]:
    """The [low, high] percentiles of each constant over bootstrap fits."""
    return {
        k: [float(np.percentile([getattr(f, k) for f in fits], q)) for q in (low, high)]
        for k in PARAMS
    }


def compute_optimal(f: Fit, flops: float) -> tuple[float, float]:
    """(N_opt, D_opt) minimising the fitted loss at a budget of `flops` = 6 N D."""
    # Chinchilla appendix D.2: minimising A/N^alpha + B/D^beta subject to N D = C/6 gives
    # N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = (C/6) / N_opt,
    # with G = (alpha A / (beta B))^(1/(alpha+beta)).
    g = (f.alpha * f.A / (f.beta * f.B)) ** (1.0 / (f.alpha + f.beta))
    n_opt = g * (flops / 6.0) ** (f.beta / (f.alpha + f.beta))
    return n_opt, flops / 6.0 / n_opt


# --- approach 2 -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IsoFlop:
    """One FLOP budget's runs, its parabola in log N and the best N* and D* it gives."""

    budget: float
    runs: tuple[Run, ...]
    coeffs: tuple[float, float, float]  # loss = c2 (log N)^2 + c1 log N + c0
    n_star: float
    d_star: float

    @property
    def bracketed(self) -> bool:
        """Whether the parabola's minimum lies within the budget's sizes (no extrapolation)."""
        return min(r.n for r in self.runs) <= self.n_star <= max(r.n for r in self.runs)


def isoflop_groups(runs: Sequence[Run], rtol: float = 0.1) -> list[list[Run]]:
    """Runs grouped by FLOP budget: an explicit budget, else 6ND within `rtol` of the first."""
    explicit: dict[float, list[Run]] = {}
    for r in runs:
        if r.budget is not None:
            explicit.setdefault(r.budget, []).append(r)
    groups = list(explicit.values())
    current: list[Run] = []
    for r in sorted((r for r in runs if r.budget is None), key=lambda r: r.flops):
        if current and r.flops > current[0].flops * (1 + rtol):
            groups.append(current)
            current = []
        current.append(r)
    if current:
        groups.append(current)
    return groups


def isoflops(runs: Sequence[Run], rtol: float = 0.1, *, inside: bool = True) -> list[IsoFlop]:
    """Approach 2's per-budget parabolas; budgets with fewer than 3 sizes or no minimum drop.

    With `inside`, so does a budget whose minimum lies outside its sizes (an extrapolation:
    the sweep's sizes do not bracket that budget's best size).
    """
    out = []
    for group in isoflop_groups(runs, rtol):
        if len({r.n for r in group}) < 3:
            continue  # a parabola needs three sizes
        budget = group[0].budget or float(np.exp(np.mean(np.log([r.flops for r in group]))))
        x = np.log([r.n for r in group])
        c2, c1, c0 = np.polyfit(x, [r.loss for r in group], 2)
        if c2 <= 0:
            continue  # opens downwards: no minimum inside the budget's sizes
        n_star = float(np.exp(-c1 / (2 * c2)))
        out.append(IsoFlop(budget, tuple(group), (c2, c1, c0), n_star, budget / 6.0 / n_star))
    return sorted((g for g in out if g.bracketed or not inside), key=lambda g: g.budget)


def isoflop_exponents(groups: Sequence[IsoFlop]) -> dict[str, float] | None:
    """a and b of N* ~ C^a and D* ~ C^b (least squares in log space); None under 2 budgets."""
    if len(groups) < 2:
        return None
    log_c = np.log([g.budget for g in groups])
    a, log_ka = np.polyfit(log_c, np.log([g.n_star for g in groups]), 1)
    b, log_kb = np.polyfit(log_c, np.log([g.d_star for g in groups]), 1)
    return {
        "a": float(a),
        "b": float(b),
        "n_coeff": float(np.exp(log_ka)),
        "d_coeff": float(np.exp(log_kb)),
    }


# --- report and plots -----------------------------------------------------------------

_SKIPPED = (
    "{} FLOP budgets have 3+ model sizes around their best one; it needs 2 (train several N "
    "at each of several budgets C = 6ND, bracketing each budget's best size)"
)


def analyse(
    runs: Sequence[Run],
    *,
    budget_flops: float | None = None,
    resamples: int = 200,
    seed: int = 0,
    rtol: float = 0.1,
) -> dict[str, Any]:
    """Both approaches' results as one JSON-able dict (what scaling.json holds)."""
    best = fit(runs)
    report: dict[str, Any] = {
        "runs": [dataclasses.asdict(r) for r in runs],
        "approach3": {
            **best.as_dict(),
            "huber_objective": best.objective,
            "at_bounds": list(best.at_bounds),
        },
        "chinchilla": CHINCHILLA,
    }
    fits = bootstrap(runs, best, resamples=resamples, seed=seed) if resamples else []
    if fits:
        report["intervals"] = {"percentiles": [5, 95], "resamples": len(fits), "seed": seed}
        report["intervals"].update(intervals(fits))
    every = isoflops(runs, rtol, inside=False)
    groups = [g for g in every if g.bracketed]
    exponents = isoflop_exponents(groups)
    # Budgets left out because their parabola's minimum lies outside their sizes: the best
    # size there is an edge of the sweep (extend the sizes that way).
    edges = [
        {"flops": g.budget, "best_n": min(g.runs, key=lambda r: r.loss).n, "n_star": g.n_star}
        for g in every
        if not g.bracketed
    ]
    report["approach2"] = {
        "budgets": [{"flops": g.budget, "n_star": g.n_star, "d_star": g.d_star} for g in groups],
        "unbracketed": edges,
        **(exponents or {"skipped": _SKIPPED.format(len(groups))}),
    }
    report["approach3"]["a"] = best.beta / (best.alpha + best.beta)
    report["approach3"]["b"] = best.alpha / (best.alpha + best.beta)
    if budget_flops:
        n_opt, d_opt = compute_optimal(best, budget_flops)
        optimal: dict[str, Any] = {"flops": budget_flops, "N": n_opt, "D": d_opt}
        if fits:
            sizes = np.array([compute_optimal(f, budget_flops) for f in fits])
            optimal["N_interval"] = [float(np.percentile(sizes[:, 0], q)) for q in (5, 95)]
            optimal["D_interval"] = [float(np.percentile(sizes[:, 1], q)) for q in (5, 95)]
        report["compute_optimal"] = optimal
    return report


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on clusters
    import matplotlib.pyplot as plt

    return plt


def plot_loss_vs_n(runs: Sequence[Run], f: Fit, path: str | pathlib.Path) -> pathlib.Path:
    """Loss against N per token count (D), with the fitted curve of each; saved as PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    by_d: dict[float, list[Run]] = {}
    for r in runs:
        by_d.setdefault(r.d, []).append(r)
    # A sweep with a D per run (IsoFLOP) would draw one curve per point: cap the curves.
    shown = sorted(by_d)[:: max(1, len(by_d) // 8)]
    colors = plt.cm.viridis(np.linspace(0, 1, len(shown)))
    n_grid = np.geomspace(min(r.n for r in runs) / 2, max(r.n for r in runs) * 2, 100)
    for color, d in zip(colors, shown, strict=True):
        ax.scatter([r.n for r in by_d[d]], [r.loss for r in by_d[d]], color=color, s=12)
        ax.plot(n_grid, f.loss(n_grid, d), color=color, label=f"D={d:.2g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel("final loss")
    ax.set_title(f"L = {f.E:.3g} + {f.A:.3g}/N^{f.alpha:.3f} + {f.B:.3g}/D^{f.beta:.3f}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_isoflops(groups: Sequence[IsoFlop], path: str | pathlib.Path) -> pathlib.Path:
    """Each budget's losses against N with its parabola and minimum; saved as PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = plt.cm.plasma(np.linspace(0, 0.9, max(1, len(groups))))
    for color, g in zip(colors, groups, strict=False):
        ns = np.array([r.n for r in g.runs])
        ax.scatter(ns, [r.loss for r in g.runs], color=color, s=12)
        x = np.linspace(np.log(ns.min()), np.log(ns.max()), 100)
        ax.plot(np.exp(x), np.polyval(g.coeffs, x), color=color, label=f"C={g.budget:.2g}")
        ax.axvline(g.n_star, color=color, linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel("final loss")
    ax.set_title("IsoFLOP profiles (dotted: N*)")
    if groups:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
