"""Hugging Face checkpoints <-> workdirs.

Import: `python -m launch.convert --from_hf=DIR --workdir=W [--config=experiments/X.py:arg]`
writes W/config.json and an orbax checkpoint at step 0 (decode with
`launch.decode --workdir=W`, fine-tune with `launch.train --config=experiments/workdir.py:W
--workdir=W`). Export: `python -m launch.convert --to_hf=DIR --workdir=W [--step=S]`
writes config.json + model.safetensors that transformers' from_pretrained loads.
"""

from __future__ import annotations

import time

from absl import flags

from launch.cli import run_main
from llm.config import split_config_overrides
from llm.errors import ConfigError

_FROM_HF = flags.DEFINE_string("from_hf", "", "HF folder (config.json + safetensors) to import.")
_TO_HF = flags.DEFINE_string("to_hf", "", "Folder to export the workdir's checkpoint into.")
_WORKDIR = flags.DEFINE_string("workdir", "", "Workdir to write (import) or read (export).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to export (default: the latest).")
_CONFIG = flags.DEFINE_string(
    "config",
    "",
    "Import: experiment whose data/train/mesh groups the workdir gets (its model group is "
    "replaced by the imported one); default: byte tokenizer, generated data, default mesh.",
)
_SCAN_LAYERS = flags.DEFINE_bool("scan_layers", False, "Import with nn.scan'ned layers.")
_DTYPE = flags.DEFINE_string("dtype", "float32", "Import: compute dtype of the model config.")

_OVERRIDES: list[tuple[str, str]] = []


def _parse(argv: list[str]) -> list[str]:
    rest, overrides = split_config_overrides(argv)
    _OVERRIDES.extend(overrides)
    return flags.FLAGS(rest)


def main(argv: list[str]) -> None:
    """Runs the import or the export the flags ask for."""
    if len(argv) > 1:
        raise ConfigError(f"Unexpected arguments {argv[1:]}.")
    if bool(_FROM_HF.value) == bool(_TO_HF.value) or not _WORKDIR.value:
        raise ConfigError("Pass --workdir and exactly one of --from_hf=DIR or --to_hf=DIR.")
    from llm.convert.workdir import export_workdir, import_to_workdir
    from llm.train.console import quiet_library_logs

    quiet_library_logs()
    start = time.perf_counter()
    if _TO_HF.value:
        path = export_workdir(_WORKDIR.value, _TO_HF.value, step=_STEP.value)
        print(f"exported {_WORKDIR.value} to {path} in {time.perf_counter() - start:.1f}s")
        return
    base = None
    if _CONFIG.value:
        from llm.config import load_config

        base = load_config(_CONFIG.value, _OVERRIDES)
    elif _OVERRIDES:
        raise ConfigError("--config.* overrides need --config=experiments/X.py.")
    config = import_to_workdir(
        _FROM_HF.value,
        _WORKDIR.value,
        base_config=base,
        scan_layers=_SCAN_LAYERS.value,
        dtype=_DTYPE.value,
    )
    print(
        f"imported {_FROM_HF.value} ({config.model.family}) into {_WORKDIR.value} "
        f"in {time.perf_counter() - start:.1f}s"
    )


def run() -> None:
    """Entry point: a bad folder or flag is one 'error:' line and exit status 2."""
    run_main(main, flags_parser=_parse)


if __name__ == "__main__":
    run()
