"""Scaling-law fits: approach 3 and its bootstrap, compute-optimal sizes, IsoFLOP, launcher."""

import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from llm.errors import ConfigError, InputFileError
from llm.models.config import ModelConfig
from llm.sweeps import scaling
from llm.sweeps.run import STATUS_FILE, SWEEP_FILE

ROOT = pathlib.Path(__file__).resolve().parents[2]
TRUE = scaling.Fit(E=1.7, A=400.0, B=410.0, alpha=0.34, beta=0.28)


def _grid_runs(seed: int = 0, noise: float = 0.01) -> list[scaling.Run]:
    """8 x 8 runs, N in 1e5..1e8 and D in 1e7..1e10, losses times exp(N(0, noise))."""
    rng = np.random.default_rng(seed)
    rows = [
        (n, d, float(TRUE.loss(n, d)) * float(np.exp(rng.normal(0, noise))))
        for n in np.geomspace(1e5, 1e8, 8)
        for d in np.geomspace(1e7, 1e10, 8)
    ]
    return scaling.runs_from_rows(rows)


def _isoflop_runs(seed: int = 0, noise: float = 0.002) -> list[scaling.Run]:
    """5 budgets 1e16..1e20, each 9 sizes from N_opt/4 to 4 N_opt with D = C / 6N."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.geomspace(1e16, 1e20, 5):
        n_opt, _ = scaling.compute_optimal(TRUE, c)
        for n in n_opt * np.geomspace(0.25, 4, 9):
            d = c / 6 / n
            rows.append((n, d, float(TRUE.loss(n, d)) * float(np.exp(rng.normal(0, noise)))))
    return scaling.runs_from_rows(rows)


def test_approach3_recovers_the_constants():
    fit = scaling.fit(_grid_runs())
    # Measured: alpha 0.3403, beta 0.2860, E 1.744 (2.6% off) at 1% noise.
    assert fit.alpha == pytest.approx(TRUE.alpha, abs=0.02)
    assert fit.beta == pytest.approx(TRUE.beta, abs=0.02)
    assert fit.E == pytest.approx(TRUE.E, rel=0.05)
    assert fit.A == pytest.approx(TRUE.A, rel=0.25)
    assert fit.B == pytest.approx(TRUE.B, rel=0.25)


def test_noiseless_fit_is_exact():
    fit = scaling.fit(_grid_runs(noise=0.0))
    for key, value in TRUE.as_dict().items():
        assert getattr(fit, key) == pytest.approx(value, rel=1e-3), key


def test_bootstrap_intervals_contain_the_true_constants():
    runs = _grid_runs()
    best = scaling.fit(runs)
    fits = scaling.bootstrap(runs, best, resamples=100, seed=0)
    assert len(fits) == 100
    bounds = scaling.intervals(fits)
    for key, value in TRUE.as_dict().items():
        low, high = bounds[key]
        assert low <= value <= high, (key, low, high)
        assert low <= getattr(best, key) <= high, key
    # Seeded: the same resamples give the same intervals.
    again = scaling.intervals(scaling.bootstrap(runs, best, resamples=100, seed=0))
    assert again == bounds


def test_compute_optimal_matches_the_closed_form():
    c = 1e21
    a, b = TRUE.beta / (TRUE.alpha + TRUE.beta), TRUE.alpha / (TRUE.alpha + TRUE.beta)
    g = (TRUE.alpha * TRUE.A / (TRUE.beta * TRUE.B)) ** (1 / (TRUE.alpha + TRUE.beta))
    n_true, d_true = scaling.compute_optimal(TRUE, c)
    assert n_true == pytest.approx(g * (c / 6) ** a, rel=1e-12)
    assert d_true == pytest.approx((c / 6) ** b / g, rel=1e-9)
    assert 6 * n_true * d_true == pytest.approx(c, rel=1e-12)
    # The loss along the budget is smallest there.
    along = [float(TRUE.loss(n, c / 6 / n)) for n in n_true * np.array([0.8, 1.0, 1.25])]
    assert along[1] < min(along[0], along[2])
    # From the noisy fit: within 10% of the true N_opt and D_opt (measured +4.8%, -4.6%).
    n_fit, d_fit = scaling.compute_optimal(scaling.fit(_grid_runs()), c)
    assert n_fit == pytest.approx(n_true, rel=0.1)
    assert d_fit == pytest.approx(d_true, rel=0.1)


def test_isoflop_exponents_match_the_true_allocation():
    runs = _isoflop_runs()
    groups = scaling.isoflops(runs)
    assert [len(g.runs) for g in groups] == [9] * 5
    for g in groups:
        n_opt, _ = scaling.compute_optimal(TRUE, g.budget)
        assert g.n_star == pytest.approx(n_opt, rel=0.1)
    exps = scaling.isoflop_exponents(groups)
    # Measured: a 0.4492 (true 0.4516), b 0.5508 (true 0.5484).
    assert exps["a"] == pytest.approx(TRUE.beta / (TRUE.alpha + TRUE.beta), abs=0.01)
    assert exps["b"] == pytest.approx(TRUE.alpha / (TRUE.alpha + TRUE.beta), abs=0.01)
    assert exps["a"] + exps["b"] == pytest.approx(1.0, abs=1e-9)  # C = 6 N* D*


def test_isoflop_minima_outside_the_sizes_are_left_out_and_reported():
    # Every size of each budget is above its compute-optimal one: the parabolas' minima lie
    # below the smallest size, so approach 2 has no budget to fit and says which were edges.
    rows = []
    for c in (1e16, 1e17):
        n_opt, _ = scaling.compute_optimal(TRUE, c)
        rows += [
            (n, c / 6 / n, float(TRUE.loss(n, c / 6 / n))) for n in n_opt * np.geomspace(8, 64, 4)
        ]
    runs = scaling.runs_from_rows(rows)
    assert scaling.isoflops(runs) == []
    assert len(scaling.isoflops(runs, inside=False)) == 2
    report = scaling.analyse(runs, resamples=0)
    assert "skipped" in report["approach2"]
    assert [
        e["best_n"] == min(r.n for r in runs if abs(r.flops / e["flops"] - 1) < 0.1)
        for e in report["approach2"]["unbracketed"]
    ] == [True, True]


def test_isoflop_groups_by_tolerance_or_explicit_budget():
    runs = scaling.runs_from_rows([(1e6, 1e9, 3.0), (2e6, 0.52e9, 2.9), (1e6, 1e10, 2.5)])
    assert [len(g) for g in scaling.isoflop_groups(runs, rtol=0.1)] == [2, 1]
    explicit = scaling.runs_from_rows(
        [
            {"N": 1e6, "D": 1e9, "loss": 3.0, "budget": 7},
            {"N": 5e6, "D": 1e9, "loss": 3.0, "budget": 7},
        ]
    )
    assert [len(g) for g in scaling.isoflop_groups(explicit)] == [2]
    assert scaling.isoflop_exponents(scaling.isoflops(runs)) is None  # no budget has 3 sizes


def test_non_embedding_params_and_tokens():
    cfg = ModelConfig(
        vocab_size=100,
        d_model=16,
        num_heads=2,
        d_ff=32,
        num_layers=2,
        max_len=8,
        tie_embeddings=False,
    ).to_dict()
    # Per layer: q, k, v, out kernels 4 x 16 x 16 with biases 4 x 16; MLP 16 x 32 + 32 x 16
    # with biases 32 + 16; two layernorms 4 x 16. Plus the final norm 2 x 16. Not counted:
    # the token table, the learned position table and the untied head.
    per_layer = 4 * 16 * 16 + 4 * 16 + 2 * 16 * 32 + 32 + 16 + 4 * 16
    assert scaling.non_embedding_params(cfg) == 2 * per_layer + 2 * 16
    config = {"data": {"task": "lm", "seq_len": 128}, "train": {"steps": 300, "batch_size": 32}}
    assert scaling.tokens_trained(config) == 300 * 32 * 128


def test_runs_far_above_the_irreducible_loss_pin_e_to_its_floor_and_still_bootstrap():
    # No irreducible loss (E = 0): the fit cannot resolve E, which must stay a finite floor
    # (an unbounded fit underflowed exp(e) to 0 and the bootstrap's log(E) failed).
    no_floor = scaling.Fit(E=0.0, A=400.0, B=410.0, alpha=0.34, beta=0.28)
    rows = [
        (n, d, float(no_floor.loss(n, d)))
        for n in np.geomspace(1e4, 1e6, 4)
        for d in np.geomspace(1e5, 1e7, 4)
    ]
    best = scaling.fit(scaling.runs_from_rows(rows))
    assert best.at_bounds == ("E",) and 0 < best.E < 1e-4
    assert best.alpha == pytest.approx(0.34, abs=0.01) and best.beta == pytest.approx(
        0.28, abs=0.01
    )
    fits = scaling.bootstrap(scaling.runs_from_rows(rows), best, resamples=5)
    assert len(fits) == 5 and all(f.E > 0 for f in fits)
    assert not scaling.fit(_grid_runs()).at_bounds  # a fit with a floor is inside the box


def test_isoflop_points_spend_each_budget_and_slide_the_sizes():
    base = ModelConfig(vocab_size=64, d_model=16, num_heads=2, d_ff=64, num_layers=2).to_dict()
    sizes = [{"model.d_model": d, "model.d_ff": 4 * d} for d in (16, 32, 64, 128)]
    counts = [
        scaling.non_embedding_params(base | {"d_model": d, "d_ff": 4 * d})
        for d in (16, 32, 64, 128)
    ]
    tokens = 512
    budgets = [1e10, 1e11]
    points = scaling.isoflop_points(base, sizes, budgets, tokens, min_steps=20, max_steps=2000)
    by_budget: dict[float, list[int]] = {}
    for p in points:
        n = counts[[s["model.d_model"] for s in sizes].index(p["model.d_model"])]
        c = 6 * n * p["train.steps"] * tokens
        budget = min(budgets, key=lambda b: abs(math.log(c / b)))
        # Whole steps: 6ND is within half a step of the budget.
        assert abs(c - budget) <= 6 * n * tokens / 2
        assert 20 <= p["train.steps"] <= 2000
        assert p["train.warmup_steps"] == max(1, round(0.1 * p["train.steps"]))
        by_budget.setdefault(budget, []).append(p["model.d_model"])
    # The smallest size needs too many steps at the larger budget, the largest too few at the
    # smaller one: the window of sizes moves up with the budget.
    assert by_budget[1e10] == [16, 32, 64]
    assert by_budget[1e11] == [32, 64, 128]
    with pytest.raises(ConfigError, match="model fields only"):
        scaling.isoflop_points(base, [{"train.steps": 3}], budgets, tokens)
    with pytest.raises(ConfigError, match="No size fits 20-5000 steps"):
        scaling.isoflop_points(base, sizes, [1.0], tokens)
    with pytest.raises(ConfigError, match="tokens_per_step=0"):
        scaling.isoflop_points(base, sizes, budgets, 0)


def test_bad_input_errors_name_the_fix(tmp_path):
    with pytest.raises(InputFileError, match="5 finished runs, but the fit has 5 parameters"):
        scaling.fit(_grid_runs()[:5])
    same_d = scaling.runs_from_rows([(n, 1e9, 3.0) for n in np.geomspace(1e5, 1e8, 8)])
    with pytest.raises(InputFileError, match="one N or one D"):
        scaling.fit(same_d)
    with pytest.raises(InputFileError, match="Row 0 has no loss"):
        scaling.runs_from_rows([{"N": 1e6, "D": 1e9}])
    with pytest.raises(InputFileError, match="must be positive"):
        scaling.runs_from_rows([(1e6, 0, 3.0)])
    sweep = _fake_sweep(tmp_path / "failed", [(16, 10, None)])
    (sweep / "000" / STATUS_FILE).write_text(json.dumps({"returncode": 1, "error": "boom"}))
    with pytest.raises(InputFileError, match="No finished runs in"):
        scaling.runs_from_sweep(sweep)
    sweep = _fake_sweep(tmp_path / "noloss", [(16, 10, None)])
    with pytest.raises(InputFileError, match="No eval/loss or loss in"):
        scaling.runs_from_sweep(sweep)


def test_csv_rows(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss\n1e6,2e9,3.5\n2e6,1e9,3.25\n")
    runs = scaling.runs_from_csv(path)
    assert [(r.n, r.d, r.loss) for r in runs] == [(1e6, 2e9, 3.5), (2e6, 1e9, 3.25)]
    assert runs[0].flops == 6 * 1e6 * 2e9


def _fake_sweep(root: pathlib.Path, points: list[tuple[int, int, float | None]]) -> pathlib.Path:
    """A sweep the way llm/sweeps/run.py leaves it: sweep.json, and per point a workdir
    with config.json, metrics.jsonl and status.json. Points are (d_model, steps, loss)."""
    plan = {"config": "experiments/tiny_lm.py", "sweep": "scale", "extra_args": [], "points": []}
    for i, (d_model, steps, loss) in enumerate(points):
        workdir = root / f"{i:03d}"
        workdir.mkdir(parents=True)
        overrides = {"model.d_model": d_model, "train.steps": steps}
        plan["points"].append({"index": i, "workdir": str(workdir), "overrides": overrides})
        model = ModelConfig(
            vocab_size=64,
            d_model=d_model,
            num_heads=2,
            d_ff=2 * d_model,
            num_layers=2,
            max_len=16,
            position="rotary",
        ).to_dict()
        config = {
            "model": model,
            "data": {"task": "lm", "seq_len": 16},
            "train": {"steps": steps, "batch_size": 8},
        }
        (workdir / "config.json").write_text(json.dumps(config))
        rows = [{"step": steps, "learning_rate": 1e-3}]  # loss None: no loss at all
        if loss is not None:
            rows += [{"step": steps, "loss": loss + 1}, {"step": steps, "eval/loss": loss}]
        (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (workdir / STATUS_FILE).write_text(json.dumps({"returncode": 0, "seconds": 1.0}))
    (root / SWEEP_FILE).write_text(json.dumps(plan))
    return root


def _launch(*args):
    return subprocess.run(
        [sys.executable, "-m", "launch.scaling", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_launcher_writes_scaling_json(tmp_path):
    points = [(d_model, steps, 0.0) for d_model in (16, 32, 64) for steps in (10, 100, 1000)]
    # Two layers of 8d^2 + 11d (attention 4d^2 + 4d, MLP with d_ff=2d 4d^2 + 3d, two
    # layernorms 4d) and the final norm 2d; rotary and tied: no table counts.
    sizes = {d: 2 * (8 * d * d + 11 * d) + 2 * d for d in (16, 32, 64)}
    points = [(m, s, float(TRUE.loss(sizes[m], s * 8 * 16))) for m, s, _ in points]
    sweep = _fake_sweep(tmp_path / "sweep", points)
    # A failed point is left out, not fatal.
    _fake_sweep(tmp_path / "extra", [(16, 10, 5.0)])
    plan = json.loads((sweep / SWEEP_FILE).read_text())
    failed = tmp_path / "extra" / "000"
    (failed / STATUS_FILE).write_text(json.dumps({"returncode": 1, "error": "boom"}))
    plan["points"].append({"index": 9, "workdir": str(failed), "overrides": {}})
    (sweep / SWEEP_FILE).write_text(json.dumps(plan))

    out = _launch(f"--sweep_dir={sweep}", "--budget_flops=1e12", "--bootstrap=20")
    assert out.returncode == 0, out.stderr
    report = json.loads((sweep / "scaling.json").read_text())
    assert [r["n"] for r in report["runs"]] == [float(sizes[m]) for m, _, _ in points]
    assert [r["d"] for r in report["runs"]] == [s * 8 * 16.0 for _, s, _ in points]
    # Noiseless losses from the true constants: the launcher's fit gives them back.
    for key, value in TRUE.as_dict().items():
        assert report["approach3"][key] == pytest.approx(value, rel=1e-3), key
    fit = scaling.Fit(**{k: report["approach3"][k] for k in scaling.PARAMS})
    n_opt, d_opt = scaling.compute_optimal(fit, 1e12)
    assert report["compute_optimal"]["N"] == pytest.approx(n_opt, rel=1e-12)
    assert report["compute_optimal"]["D"] == pytest.approx(d_opt, rel=1e-12)
    assert report["compute_optimal"]["N"] == pytest.approx(
        scaling.compute_optimal(TRUE, 1e12)[0], rel=1e-2
    )
    assert report["intervals"]["resamples"] == 20
    assert "Chinchilla" in out.stdout and "Compute-optimal at C=1e+12 FLOPs" in out.stdout
    assert (sweep / "scaling_loss_vs_n.png").stat().st_size > 1000
    assert (sweep / "scaling_isoflops.png").is_file()


def test_launcher_errors_are_one_line(tmp_path):
    out = _launch(f"--sweep_dir={tmp_path / 'nope'}")
    assert out.returncode == 2
    assert out.stderr.strip().endswith("not found; plan the sweep first (launch.sweep --config).")
    csv = tmp_path / "few.csv"
    csv.write_text("N,D,loss\n1e6,1e9,3\n2e6,1e9,2.9\n")
    out = _launch(f"--sweep_dir={csv}", "--bootstrap=0")
    assert out.returncode == 2
    assert "error: 2 finished runs, but the fit has 5 parameters: give at least 6" in out.stderr
    out = _launch(f"--sweep_dir={csv}", "--bootstrap=-1")
    assert out.returncode == 2 and "--bootstrap=-1 must be >= 0" in out.stderr
