"""Devices of a TPU topology for ahead-of-time compilation on a machine without TPUs.

libtpu (the `[tpu]` extra) compiles for any TPU topology from a CPU-only host:
`jax.experimental.topologies` describes the chips, and `jit(...).lower(...).compile()`
on a mesh of them runs the real TPU compiler (memory assignment, cost model). Nothing
executes. JAX_PLATFORMS must stay `cpu` on such a host, or JAX tries to open a TPU.

For several slices (`slices=N`), `dcn_transfers` reads the compiled program's
cross-slice (DCN) collectives: what a multi-slice mesh sends over the data-centre network.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re

import jax

from llm.errors import ConfigError, TPUCompilerMissingError
from llm.hardware import Chip, get_chip

INSTALL_HINT = (
    "pip install -e '.[tpu]' (jax[tpu], which brings libtpu) and keep JAX_PLATFORMS=cpu "
    "on a machine without TPUs"
)
# How JAX spells a topology: generation, then chips per axis (v4/v5p are 3-D, v5e/v6e 2-D).
_TOPOLOGY = re.compile(r"^(v4|v5e|v5p|v6e):(\d+(?:x\d+){1,2})$")
_CHIP_OF_GENERATION = {"v4": "tpu_v4", "v5e": "tpu_v5e", "v5p": "tpu_v5p", "v6e": "tpu_v6e"}


def parse_topology(name: str) -> tuple[str, tuple[int, ...]]:
    """'v5p:4x4x4' -> ('v5p', (4, 4, 4)); a ConfigError names the accepted forms."""
    match = _TOPOLOGY.match(name.strip())
    if not match:
        raise ConfigError(
            f"--topology={name!r} is not a TPU topology; use GENERATION:AxBxC as JAX spells "
            "it, e.g. v4:2x2x2, v5e:4x4, v5p:4x4x4, v6e:8x8."
        )
    generation, dims = match.group(1), tuple(int(d) for d in match.group(2).split("x"))
    want = 3 if generation in ("v4", "v5p") else 2
    if len(dims) != want:
        raise ConfigError(
            f"--topology={name!r}: {generation} topologies have {want} dimensions, e.g. "
            f"{generation}:{'x'.join(['2'] * want)}."
        )
    return generation, dims


def topology_chip(name: str) -> Chip:
    """Datasheet figures of the chips of topology `name`."""
    return get_chip(_CHIP_OF_GENERATION[parse_topology(name)[0]])


def libtpu_available() -> bool:
    """Whether libtpu (the TPU compiler) is installed."""
    return importlib.util.find_spec("libtpu") is not None


def tpu_devices(name: str, slices: int = 1) -> list[jax.Device]:
    """Compile-only devices of `slices` copies of TPU topology `name` (e.g. 'v5p:4x4x4')."""
    parse_topology(name)
    if slices < 1:
        raise ConfigError(f"--slices={slices} must be >= 1.")
    if not libtpu_available():
        raise TPUCompilerMissingError(
            f"Compiling for --topology={name} needs the TPU compiler: {INSTALL_HINT}."
        )
    from jax.experimental import topologies

    # Compile-only use opens no TPU, so several processes (a launcher beside the tests,
    # pytest workers) may load libtpu at once; by default the first holds a lockfile.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

    # v4 runs one JAX device per chip (megacore: both TensorCores), as TPU VMs do; its
    # default config would give one device per core with half the chip's memory each.
    chip_config = "megacore" if name.startswith("v4:") else "default"
    description = topologies.get_topology_desc(
        platform="tpu", topology_name=name, chip_config_name=chip_config, num_slices=slices
    )
    return list(description.devices)


# How the TPU compiler writes a multi-slice program (libtpu for jax 0.10): the executable
# is one slice's program; a collective across slices becomes a host-transfer `send` tagged
# for the megascale (DCN) runtime with the kind of collective.
_DCN_SEND = re.compile(
    r"^\s*%\S+ = \((\w+)\[([\d,]*)\][^)]*\).* send\(.*_xla_megascale_transfer_type=\"(\w+)\""
)
_COMPUTATION = re.compile(r"^(?:ENTRY )?%([\w.-]+) ")
_WHILE = re.compile(r" while\(%([\w.-]+)\), condition=%([\w.-]+), body=%([\w.-]+)")
_CALLS = re.compile(r"(?:calls|to_apply|branch_computations)=\{?([%\w.,\s-]+)\}?")
# Integer scalars: constants and their copies (a loop counter's start and bound).
_SCALAR = re.compile(r"^\s*%([\w.-]+) = [su]32\[\]\S* (constant|copy)\(%?([\w.-]+)\)")
_TUPLE = re.compile(r"^\s*%([\w.-]+) = .* tuple\(([^)]*)\)")
_ELEMENT = re.compile(r"^\s*%([\w.-]+) = \S+ get-tuple-element\(%[\w.-]+\), index=(\d+)")
_LOOP_BOUND = re.compile(r"^\s*ROOT .*compare\(%([\w.-]+), %([\w.-]+)\), direction=LT")
_BYTES = {"f64": 8, "s64": 8, "u64": 8, "f32": 4, "s32": 4, "u32": 4, "bf16": 2, "f16": 2}


@dataclasses.dataclass(frozen=True)
class DcnTransfer:
    """One collective that crosses slices, as compiled: kind, bytes per device, repeats."""

    kind: str  # ALL_REDUCE, ALL_GATHER, ALL_TO_ALL, ONE_TO_ONE (a permute), ...
    # Bytes of the buffer the send names, per device (the runtime's wire bytes may differ).
    nbytes: int
    # How often a step runs it: the product of its enclosing loops' trip counts (layers,
    # microbatches), read as N - start from a counter's start and `i < N` condition; None
    # where a loop has another form.
    repeats: int | None

    @property
    def in_loop(self) -> bool:
        """Whether it runs inside a loop body rather than once per step."""
        return self.repeats != 1


def dcn_transfers(hlo_text: str) -> list[DcnTransfer]:
    """The cross-slice (DCN) collectives of a compiled multi-slice TPU program's HLO text."""
    computation, sends = "", []
    callees: dict[str, list[tuple[str, str | None]]] = {}  # computation -> (callee, loop cond)
    scalars: dict[str, int | str] = {}  # name -> value, or the scalar it copies
    tuples: dict[str, list[str]] = {}  # tuple -> its elements (a loop's initial state)
    elements: dict[str, int] = {}  # get-tuple-element -> its index
    starts: dict[str, str] = {}  # loop body -> its initial tuple
    # Loop condition -> (index of the counter in the loop state, the scalar it stays below).
    bounds: dict[str, tuple[int, str]] = {}
    entry = ""
    for line in hlo_text.splitlines():
        header = _COMPUTATION.match(line)
        if header:
            computation = header.group(1)
            entry = computation if line.startswith("ENTRY") else entry
            continue
        loop = _WHILE.search(line)
        if loop:
            init, condition, body = loop.groups()
            starts[body] = init
            callees.setdefault(computation, []).append((body, condition))
        for group in _CALLS.findall(line):
            for name in filter(None, (n.strip().lstrip("%") for n in group.split(","))):
                callees.setdefault(computation, []).append((name, None))
        if scalar := _SCALAR.match(line):
            name, op, arg = scalar.groups()
            scalars[name] = int(arg) if op == "constant" else arg
        if tup := _TUPLE.match(line):
            tuples[tup.group(1)] = re.findall(r"%([\w.-]+)", tup.group(2))
        if element := _ELEMENT.match(line):
            elements[element.group(1)] = int(element.group(2))
        if bound := _LOOP_BOUND.match(line):
            counter, stop = bound.groups()
            bounds[computation] = (elements.get(counter, 0), stop)
        if send := _DCN_SEND.match(line):
            dtype, dims, kind = send.groups()
            n = 1
            for d in filter(None, dims.split(",")):
                n *= int(d)
            sends.append((computation, kind, n * _BYTES.get(dtype, 1)))
    # Repeats per computation, from the entry down through loops and calls.
    repeats: dict[str, int | None] = {entry: 1}
    frontier = [entry]
    while frontier:
        caller = frontier.pop()
        for callee, condition in callees.get(caller, ()):
            if callee in repeats:
                continue
            times = repeats[caller]
            if condition is not None:
                index, stop_name = bounds.get(condition, (0, ""))
                state = tuples.get(starts.get(callee, ""), [])
                stop = _value(scalars, stop_name)
                start = _value(scalars, state[index] if index < len(state) else "")
                ok = times is not None and stop is not None and start is not None
                times = times * (stop - start) if ok else None
            repeats[callee] = times
            frontier.append(callee)
    return [DcnTransfer(kind, nbytes, repeats.get(comp)) for comp, kind, nbytes in sends]


def _value(scalars: dict[str, int | str], name: str | None) -> int | None:
    """The value of an integer scalar, through its copies; None if it is not a constant."""
    for _ in range(8):
        value = scalars.get(name or "")
        if not isinstance(value, str):
            return value
        name = value
    return None


def dcn_bytes_per_step(transfers: list[DcnTransfer]) -> dict[str, int | None]:
    """Bytes per device that cross slices in one step, by kind of collective."""
    totals: dict[str, int | None] = {}
    for t in transfers:
        so_far = totals.get(t.kind, 0)
        totals[t.kind] = (
            None if so_far is None or t.repeats is None else so_far + t.nbytes * t.repeats
        )
    return totals
