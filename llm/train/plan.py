"""Pick a parallelism plan for a config by compiling candidates with the target's compiler.

A candidate is a mesh split of the chips (data x fsdp x tensor), a remat policy, a
number of microbatches and an attention implementation. The search:

1. enumerates every candidate whose shapes divide (batch over data x fsdp, heads,
   d_ff and vocabulary over tensor, parameters over their mesh axes);
2. drops those whose analytical memory (llm/memory.py) is over the chip's HBM even
   after the count's known overestimate (`ANALYTIC_FIT_MARGIN`);
3. orders the rest for compiling (`compile_order`): the fastest by an analytical step
   time (compute at the chip's peak, or the collectives' bytes over its interconnect,
   whichever is larger) of each kind of plan first, then the others;
4. compiles them in that order (the real TPU compiler for a topology, XLA:CPU for
   simulated devices) until `compile_top` fit, caching each compiled result on disk
   by a key of the config, candidate, devices and compiler versions;
5. ranks what fits by the TPU compiler's step-time estimate (analytical time on CPU).

Every time here is an estimate: the analytical model ranks, the compiler's cost model
estimates, and nothing is measured.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import pathlib
import time
from collections.abc import Callable, Iterable, Sequence

import jax
import ml_collections

from llm import flops, memory
from llm.data.config import sequence_lengths
from llm.hardware import GIB, Chip
from llm.models.config import ModelConfig
from llm.parallel.rules import resolve_rules
from llm.train.aot import CompileReport, compile_train_step

# The TPU compiler's temporaries have come within 0.87-1.22x of the analytical count
# (GPT-3 6.7B on v5p-64 and GPT-2 124M on v5p-4, remat full/dots/none). A candidate is
# dropped unseen only when its state plus 0.8x its temporaries exceeds the chip, and is
# compiled early only when its state plus 1.25x its temporaries fits.
ANALYTIC_FIT_MARGIN = 0.8
ANALYTIC_SURE_MARGIN = 1.25
RULES = "fsdp_tp"
REMATS = ("none", "dots", "full")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One plan: mesh sizes, remat policy, microbatches and attention implementation."""

    data: int
    fsdp: int
    tensor: int
    remat: str
    microbatches: int
    attention_impl: str

    def overrides(self) -> list[tuple[str, str]]:
        """The `--config.*` overrides that select this plan."""
        return [
            ("mesh.data", str(self.data)),
            ("mesh.fsdp", str(self.fsdp)),
            # The planner does not search expert or context parallelism (yet): experts are
            # FSDP-sharded and sequences stay whole.
            ("mesh.expert", "1"),
            ("mesh.context", "1"),
            ("mesh.tensor", str(self.tensor)),
            ("mesh.rules", RULES),
            ("model.remat", self.remat),
            ("train.microbatches", str(self.microbatches)),
            ("model.attention_impl", self.attention_impl),
        ]

    def flags(self) -> str:
        """The overrides as a command-line fragment."""
        return " ".join(f"--config.{k}={v}" for k, v in self.overrides())

    @property
    def mesh(self) -> str:
        """'data x fsdp x tensor' sizes."""
        return f"{self.data}x{self.fsdp}x{self.tensor}"


@dataclasses.dataclass
class PlanRow:
    """A candidate with its analytical figures and, when compiled, the compiler's."""

    candidate: Candidate
    analytic: memory.MemoryEstimate
    analytic_seconds: float
    compiled: dict | None = None  # summary of the CompileReport (see _summary)

    @property
    def analytic_bytes(self) -> float:
        """The analytical per-device total (state + temporaries)."""
        return self.analytic.total

    @property
    def fits(self) -> bool | None:
        """Whether the compiled step fits the chip (None: not compiled)."""
        return None if self.compiled is None else self.compiled["fits"]

    @property
    def seconds(self) -> float:
        """The best available step-time estimate: the compiler's, else the analytical one."""
        if self.compiled and self.compiled.get("estimated_seconds"):
            return self.compiled["estimated_seconds"]
        return self.analytic_seconds


@dataclasses.dataclass
class SearchSpace:
    """What the planner tries; empty tuples mean the defaults described per field."""

    # Tensor-parallel sizes (default 1, 2, 4, 8 where they divide the chips).
    tensor: tuple[int, ...] = ()
    # Data-parallel sizes (default every power of two that divides the rest).
    data: tuple[int, ...] = ()
    remat: tuple[str, ...] = REMATS
    # Microbatch counts (default 1, 2, 4, 8, 16 where they split the per-device batch).
    microbatches: tuple[int, ...] = ()
    # Attention implementations (default the config's).
    attention_impl: tuple[str, ...] = ()


def _powers_of_two_dividing(n: int, limit: int | None = None) -> list[int]:
    out, p = [], 1
    while p <= n and (limit is None or p <= limit):
        if n % p == 0:
            out.append(p)
        p *= 2
    return out


def candidates(
    config: ml_collections.ConfigDict, num_devices: int, space: SearchSpace | None = None
) -> list[Candidate]:
    """Every candidate of `space` whose batch and parameter shapes divide on `num_devices`."""
    space = space or SearchSpace()
    cfg = ModelConfig.from_dict(config.model.to_dict())
    layout = memory.param_layout(cfg)
    rules = resolve_rules(RULES)
    batch = config.train.batch_size
    per_process = batch // jax.process_count()
    out = []
    for tensor in space.tensor or _powers_of_two_dividing(num_devices, 8):
        if num_devices % tensor:
            continue
        rest = num_devices // tensor
        for data in space.data or _powers_of_two_dividing(rest):
            if rest % data:
                continue
            fsdp = rest // data
            shape = {"data": data, "fsdp": fsdp, "tensor": tensor}
            if batch % (data * fsdp) or memory.indivisible(layout, shape, rules):
                continue
            if cfg.num_heads % tensor or cfg.kv_heads % tensor or cfg.d_ff % tensor:
                continue
            rows_per_device = batch // (data * fsdp)
            for micro in space.microbatches or _powers_of_two_dividing(rows_per_device, 16):
                if rows_per_device % micro or per_process % micro:
                    continue
                for remat in space.remat:
                    for impl in space.attention_impl or (cfg.attention_impl,):
                        out.append(Candidate(data, fsdp, tensor, remat, micro, impl))
    return out


def analytic_seconds(
    cfg: ModelConfig, candidate: Candidate, chip: Chip, batch_size: int, lengths: Sequence[int]
) -> float:
    """Ranking-only step time: the larger of compute at peak and collective bytes over the
    interconnect, plus a tenth of the smaller.

    FSDP gathers the weights twice (forward, backward) and reduce-scatters the gradients
    once per microbatch; tensor parallelism all-reduces two activations per layer in the
    forward pass and two in the backward (two more when remat recomputes the forward);
    data parallelism all-reduces the gradients once per step.
    """
    cfg = cfg.replace(remat=candidate.remat)
    n = candidate.data * candidate.fsdp * candidate.tensor
    tokens = batch_size * lengths[-1]
    compute = tokens * flops.hardware_flops_per_token(cfg, *lengths) / n / chip.peak_flops
    params = memory.param_count(cfg)
    d, f, t, m = candidate.data, candidate.fsdp, candidate.tensor, candidate.microbatches
    param_bytes = 4 * params / t
    comm = 0.0
    if f > 1:
        comm += 3 * param_bytes * (f - 1) / f * m
    if t > 1:
        rows = batch_size / (d * f)
        layers = (
            cfg.num_layers
            if cfg.family != "encoder_decoder"
            else (cfg.encoder_layers + cfg.decoder_layers)
        )
        per_layer = (6 if cfg.remat == "full" else 4) * rows * lengths[-1] * cfg.d_model
        comm += per_layer * cfg.compute_dtype.itemsize * layers * 2 * (t - 1) / t
    if d > 1:
        comm += 2 * param_bytes / f * (d - 1) / d
    comm_s = comm / chip.ici_bytes_per_s
    # Collectives overlap compute, but not perfectly: a tenth of the overlapped part shows.
    return max(compute, comm_s) + 0.1 * min(compute, comm_s)


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """A digest of llm's own source: a changed model or step must not hit stale results."""
    root = pathlib.Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _versions() -> dict[str, str]:
    out = {"jax": jax.__version__, "llm_source": _source_digest()}
    for package in ("jaxlib", "libtpu"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _with(config: ml_collections.ConfigDict, candidate: Candidate) -> ml_collections.ConfigDict:
    """`config` with the candidate's overrides (as values of the fields' types)."""
    values = config.to_dict()
    for key, text in candidate.overrides():
        group, field = key.split(".")
        # A model group lists only the fields it changes; the rest are ModelConfig's defaults.
        default = getattr(ModelConfig(), field) if group == "model" else None
        current = values[group].get(field, default)
        values[group][field] = int(text) if isinstance(current, int) else text
    return ml_collections.ConfigDict(values)


def cache_key(
    config: ml_collections.ConfigDict, devices: Sequence[jax.Device], estimate: bool
) -> str:
    """A digest of everything a compiled result depends on."""
    slices = sorted({getattr(d, "slice_index", 0) or 0 for d in devices})
    blob = json.dumps(
        {
            "config": config.to_dict(),
            "devices": [len(devices), devices[0].platform, devices[0].device_kind, len(slices)],
            "coords": [list(getattr(d, "coords", ()) or ()) for d in devices[:1]],
            "estimate": estimate,
            "versions": _versions(),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _summary(report: CompileReport, hbm_bytes: float) -> dict:
    return {
        "peak_bytes": report.peak_bytes,
        "temp_bytes": report.temp_bytes,
        "fits": report.compile_error is None and report.peak_bytes <= hbm_bytes,
        "estimated_seconds": report.estimated_seconds,
        "estimated_mfu": report.estimated_mfu,
        "compile_seconds": report.compile_seconds,
        "error": report.compile_error,
    }


def compile_candidate(
    config: ml_collections.ConfigDict,
    candidate: Candidate,
    devices: Sequence[jax.Device],
    chip: Chip,
    *,
    estimate: bool,
    cache_dir: pathlib.Path | None,
) -> dict:
    """Compiles one candidate (or reads its cached result); returns its summary."""
    variant = _with(config, candidate)
    path = None
    if cache_dir is not None:
        path = cache_dir / f"{cache_key(variant, devices, estimate)}.json"
        if path.exists():
            return {**json.loads(path.read_text()), "cached": True}
    try:
        report = compile_train_step(variant, devices, estimate_time=estimate, chip=chip)
    except Exception as e:  # noqa: BLE001 - a candidate the compiler rejects is a result
        # Not cached: it may be a bug fixed by the next run.
        error = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        summary = {
            "peak_bytes": 0,
            "temp_bytes": 0,
            "fits": False,
            "estimated_seconds": None,
            "estimated_mfu": None,
            "compile_seconds": 0.0,
            "error": error,
        }
        return {**summary, "cached": False}
    summary = _summary(report, chip.hbm_bytes)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary))
        tmp.replace(path)
    return {**summary, "cached": False}


def plan(
    config: ml_collections.ConfigDict,
    devices: Sequence[jax.Device],
    chip: Chip,
    *,
    space: SearchSpace | None = None,
    compile_top: int = 3,
    max_compiles: int = 8,
    estimate: bool = True,
    cache_dir: pathlib.Path | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> list[PlanRow]:
    """Ranked candidates for `config` on `devices`; the first row is the best plan found."""
    cfg = ModelConfig.from_dict(config.model.to_dict())
    lengths = sequence_lengths(config.data)
    batch = config.train.batch_size
    layout = memory.param_layout(cfg)
    rows = []
    for cand in candidates(config, len(devices), space):
        variant = cfg.replace(remat=cand.remat, attention_impl=cand.attention_impl)
        estimate = memory.estimate_memory(
            variant,
            batch_size=batch,
            lengths=lengths,
            mesh_shape={"data": cand.data, "fsdp": cand.fsdp, "tensor": cand.tensor},
            rules=resolve_rules(RULES),
            microbatches=cand.microbatches,
            optimizer=config.train.optimizer,
            layout=layout,
        )
        rows.append(PlanRow(cand, estimate, analytic_seconds(variant, cand, chip, batch, lengths)))
    hbm = chip.hbm_bytes
    # The state is counted exactly; only the temporaries are uncertain.
    feasible = [
        r for r in rows if r.analytic.state + ANALYTIC_FIT_MARGIN * r.analytic.temporaries <= hbm
    ]

    feasible = compile_order(feasible, hbm)
    progress(
        f"{len(rows)} candidates; {len(feasible)} may fit {chip.hbm_bytes / GIB:.2f} GiB "
        "by the analytical count; compiling the fastest of each remat policy and kind of "
        "mesh first"
    )
    fitting = compiles = 0
    for row in feasible:
        if fitting >= compile_top or compiles >= max_compiles:
            break
        t0 = time.perf_counter()
        row.compiled = compile_candidate(
            config, row.candidate, devices, chip, estimate=estimate, cache_dir=cache_dir
        )
        compiles += 1
        fitting += bool(row.fits)
        c = row.candidate
        if row.compiled["error"] and not row.compiled["peak_bytes"]:
            outcome = f"failed: {row.compiled['error']}"
        else:
            outcome = f"peak {row.compiled['peak_bytes'] / GIB:.2f} GiB, " + (
                "fits" if row.fits else "does not fit"
            )
        took = "cached" if row.compiled["cached"] else f"{time.perf_counter() - t0:.0f} s"
        progress(
            f"  [{compiles}] {c.mesh} remat={c.remat} micro={c.microbatches}: {outcome} ({took})"
        )
    return rank(feasible)


def compile_order(rows: Sequence[PlanRow], hbm: float) -> list[PlanRow]:
    """The order to compile candidates in: varied first, then by analytical time.

    The analytical time model is crude (it assumes perfect overlap and full-speed small
    matmuls), so its top few are often one family of near-identical plans. The fastest
    candidate of each (remat policy, tensor parallel or not, FSDP or not) group that fits
    by the count comes first, so that a small compile budget samples different plans;
    then every other candidate that fits by the count; then the uncertain ones.
    """

    def sure(r: PlanRow) -> bool:
        return r.analytic.state + ANALYTIC_SURE_MARGIN * r.analytic.temporaries <= hbm

    ordered = sorted(rows, key=lambda r: (not sure(r), r.analytic_seconds))
    leaders, seen = [], set()
    for row in ordered:
        c = row.candidate
        group = (c.remat, c.tensor > 1, c.fsdp > 1)
        if sure(row) and group not in seen:
            seen.add(group)
            leaders.append(row)
    ids = {id(r) for r in leaders}
    return leaders + [r for r in ordered if id(r) not in ids]


def rank(rows: Iterable[PlanRow]) -> list[PlanRow]:
    """Compiled fits by estimated time, then compiled misfits, then the uncompiled."""

    def order(row: PlanRow) -> tuple[int, float]:
        group = 0 if row.fits else (1 if row.fits is False else 2)
        return group, row.seconds

    return sorted(rows, key=order)


def format_table(rows: Sequence[PlanRow], chip: Chip, limit: int = 12) -> str:
    """The ranked table, estimates labelled; at most `limit` rows."""
    header = (
        f"{'#':>2}  {'mesh d x f x t':<14} {'remat':<5} {'micro':>5} {'attention':<9} "
        f"{'HBM GiB (analytic)':>18} {'HBM GiB (compiled)':>18} {'fits':<4} "
        f"{'step s (est.)':>13} {'MFU (est.)':>10} {'compile s':>9}"
    )
    lines = [header]
    for i, row in enumerate(rows[:limit], 1):
        c, comp = row.candidate, row.compiled
        compiled = f"{comp['peak_bytes'] / GIB:18.2f}" if comp else f"{'-':>18}"
        fits = "-" if comp is None else ("yes" if comp["fits"] else "no")
        if comp and comp["error"] and not comp["peak_bytes"]:
            compiled, fits = f"{'error':>18}", "no"
        if comp and comp.get("estimated_seconds"):
            seconds, source = comp["estimated_seconds"], ""
        else:
            seconds, source = row.analytic_seconds, "*"
        mfu = comp.get("estimated_mfu") if comp else None
        compile_s = (
            ("cached" if comp and comp.get("cached") else f"{comp['compile_seconds']:.0f}")
            if comp
            else "-"
        )
        lines.append(
            f"{i:>2}  {c.mesh:<14} {c.remat:<5} {c.microbatches:>5} {c.attention_impl:<9} "
            f"{row.analytic_bytes / GIB:18.2f} {compiled} {fits:<4} "
            f"{seconds:12.4f}{source or ' '} {(f'{mfu:.1%}' if mfu else '-'):>10} {compile_s:>9}"
        )
    lines.append(
        f"HBM per chip {chip.hbm_bytes / GIB:.2f} GiB ({chip.name}). Step times and MFU are "
        "estimates: the TPU compiler's cost model where compiled for a TPU, else (*) the "
        "analytical ranking model of llm/train/plan.py. Nothing here was measured."
    )
    return "\n".join(lines)
