"""The saved config of an existing workdir (e.g. one launch.convert imported); arg: the workdir.

`python -m launch.train --config=experiments/workdir.py:W --workdir=W` resumes W with
exactly the config it was written with (fine-tuning an imported checkpoint);
`--config.a.b=v` overrides fields as usual (the model group must keep the weights' shapes).
"""

import ml_collections

from llm.errors import ConfigError

# The arg is free-form: the path of a workdir (launch.list shows this name).
ARGS = "WORKDIR"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """W/config.json as an experiment config."""
    if not arg:
        raise ConfigError(
            "experiments/workdir.py needs the workdir: --config=experiments/workdir.py:W"
        )
    from llm.train.restore import load_run_config

    return load_run_config(arg)
