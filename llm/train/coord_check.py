"""The muP coordinate check (Tensor Programs V, section 5 / appendix D.1): activation size vs width.

Models of one family at several widths train a few steps from the same data; after each
step the mean absolute value of every coordinate of chosen activations (the embedding
output, each layer's attention and MLP outputs, each layer's output, the logits) is
measured on one fixed batch. Under the standard parametrization with Adam and a fixed
learning rate the updated activations grow with width (the logits fastest); under muP
they stay the same size, which is what lets a learning rate tuned at the base width
transfer. `python -m launch.mup_check` runs it for both and plots the curves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections

from llm import data as data_lib
from llm.errors import ConfigError
from llm.models import mup
from llm.parallel import host_batch_to_global
from llm.train.program import build_train_program, under_rules


@dataclasses.dataclass
class CoordCheck:
    """scales[width][step][activation] = mean |x| (step 0 = at init)."""

    parametrization: str
    widths: list[int]
    scales: dict[int, list[dict[str, float]]]

    def growth(self, activation: str, step: int) -> float:
        """Scale at the widest model over the narrowest one, after `step` updates."""
        first, last = self.scales[self.widths[0]], self.scales[self.widths[-1]]
        return last[step][activation] / first[step][activation]


def width_config(
    config: ml_collections.ConfigDict, width: int, parametrization: str, base_width: int
) -> ml_collections.ConfigDict:
    """`config` at d_model = width (d_ff = 4 width, heads fixed) in `parametrization`."""
    out = ml_collections.ConfigDict(config.to_dict())
    ratio = config.model.d_ff / config.model.d_model
    out.model.d_model = width
    out.model.d_ff = int(round(ratio * width))
    out.model.parametrization = parametrization
    out.model.mup_base_width = base_width if parametrization == "mup" else 0
    out.model.scan_layers = False  # per-layer activations are named by layer
    out.model.dropout_rate = 0.0
    # A constant rate from the first update: a warmup would hide the growth being checked.
    out.train.schedule = "constant"
    out.train.warmup_steps = 0
    out.model.attention_dropout_rate = 0.0
    return out


def coordinate_check(
    config: ml_collections.ConfigDict,
    widths: Sequence[int],
    *,
    parametrization: str,
    base_width: int | None = None,
    steps: int = 3,
) -> CoordCheck:
    """Trains `config` at each width for `steps` updates and measures activation sizes."""
    widths = sorted(widths)
    heads = config.model.num_heads
    bad = [w for w in widths if w % heads]
    if bad or len(widths) < 2:
        raise ConfigError(
            f"Coordinate-check widths {widths} must be at least two multiples of "
            f"model.num_heads={heads}."
        )
    base_width = base_width or widths[0]
    data_lib.ensure_dataset(config.data)
    batches = None
    scales: dict[int, list[dict[str, float]]] = {}
    for width in widths:
        cfg = width_config(config, width, parametrization, base_width)
        program = build_train_program(cfg)
        if batches is None:  # every width trains on the same batches
            it = data_lib.make_iterator(
                cfg.data, split=cfg.data.train_split, batch_size=cfg.train.batch_size
            )
            batches = [next(it) for _ in range(steps + 1)]
        model, layers = program.model, program.model_cfg.num_layers

        def measure(params, batch, model=model, layers=layers):
            _, state = model.apply(
                {"params": params},
                batch["inputs"],
                positions=batch.get("positions"),
                segment_ids=batch.get("segment_ids"),
                capture_intermediates=True,
                mutable=["intermediates"],
            )
            acts = mup.coordinate_activations(state["intermediates"], layers)
            return {k: jnp.mean(jnp.abs(v.astype(jnp.float32))) for k, v in acts.items()}

        measured = jax.jit(under_rules(measure, program.rules))
        state = program.init_state()
        with jax.set_mesh(program.mesh):
            probe = host_batch_to_global(batches[0], program.batch_sharding)
            rows = [jax.device_get(measured(state.params, probe))]
            for step in range(steps):
                batch = host_batch_to_global(batches[1 + step], program.batch_sharding)
                state, _ = program.train_step(state, batch)
                rows.append(jax.device_get(measured(state.params, probe)))
        scales[width] = [{k: float(v) for k, v in r.items()} for r in rows]
    return CoordCheck(parametrization, list(widths), scales)


def plot(checks: Sequence[CoordCheck], path: str) -> None:
    """One panel per parametrization: mean |x| vs width, a line per activation, at the last step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(checks), figsize=(6 * len(checks), 4.5), squeeze=False)
    for ax, check in zip(axes[0], checks, strict=True):
        last = len(check.scales[check.widths[0]]) - 1
        names = list(check.scales[check.widths[0]][last])
        for name in names:
            ys = [check.scales[w][last][name] for w in check.widths]
            ax.plot(check.widths, ys, marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("d_model")
        ax.set_ylabel(f"mean |x| after {last} steps")
        ax.set_title(check.parametrization)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def growth_table(checks: Sequence[CoordCheck]) -> str:
    """Markdown: widest / narrowest activation size per activation, at each step."""
    steps = len(checks[0].scales[checks[0].widths[0]])
    names = list(checks[0].scales[checks[0].widths[0]][0])
    head = "| activation | " + " | ".join(
        f"{c.parametrization} step {s}" for c in checks for s in range(steps)
    )
    lines = [head + " |", "|---" * (1 + steps * len(checks)) + "|"]
    for name in names:
        cells = [f"{c.growth(name, s):.2f}" for c in checks for s in range(steps)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def as_json(checks: Sequence[CoordCheck]) -> dict:
    """The checks as plain JSON data."""
    return {
        c.parametrization: {
            "widths": c.widths,
            "scales": {str(w): c.scales[w] for w in c.widths},
        }
        for c in checks
    }


def flat_enough(check: CoordCheck, tolerance: float) -> dict[str, float]:
    """Activations whose widest/narrowest ratio after the last step leaves [1/tol, tol]."""
    last = len(check.scales[check.widths[0]]) - 1
    growth = {k: check.growth(k, last) for k in check.scales[check.widths[0]][last]}
    return {k: g for k, g in growth.items() if not 1 / tolerance <= g <= tolerance}
