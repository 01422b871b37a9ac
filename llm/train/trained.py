"""A trained model ready to use: its config, module and params on the mesh they are sharded over.

What decoding and generation metrics take: the trainer describes its live params this
way (the sample at the end of a run), llm.train.restore a checkpoint's (Restored).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import ml_collections
from jax.sharding import Mesh

from llm import models
from llm.parallel.rules import LogicalRules


@dataclasses.dataclass
class TrainedModel:
    """A model with params on a mesh, and the run config (data lengths, tokenizer) it trained with."""

    config: ml_collections.ConfigDict
    model_cfg: models.ModelConfig
    model: nn.Module
    params: Any
    mesh: Mesh
    rules: LogicalRules
