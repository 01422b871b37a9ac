"""build_train_program: one path from a config to jitted steps that keep the models' constraints."""

import jax
import pytest

from llm.train.program import build_train_program
from tests.train.tiny import tiny_config


def _sharding_constraints(lowered: jax.stages.Lowered) -> int:
    return lowered.as_text().count("sdy.sharding_constraint")


def test_steps_are_traced_with_the_logical_rules(data_dir):
    # Without the rules in scope, flax's with_logical_constraint is a no-op, XLA spreads
    # the FSDP sharding of the weights into the activations and every device holds the
    # whole batch (issue #12: 16.7x the activation memory of a lean step).
    config = tiny_config(data_dir)
    config.unlock()
    config.mesh.update(data=1, fsdp=8, tensor=1, rules="fsdp")
    program = build_train_program(config)
    train_constraints = _sharding_constraints(program.lower_train_step())
    with jax.set_mesh(program.mesh):
        eval_lowered = program.eval_step.lower(
            program.abstract_state.params, program.abstract_batch()
        )
    # Each of 2 layers constrains its output, queries, attention output and MLP hidden
    # state; the embedding and the logits are constrained too.
    assert train_constraints >= 2 * 4 + 2
    assert _sharding_constraints(eval_lowered) >= 2 * 4 + 2


def test_program_checks_batch_and_microbatches(data_dir):
    config = tiny_config(data_dir, batch_size=12, microbatches=1)
    with pytest.raises(
        ValueError, match="batch_size=12 is not divisible by the data-parallel size 8"
    ):
        build_train_program(config)
    config = tiny_config(data_dir, microbatches=3)
    with pytest.raises(ValueError, match="microbatches=3 must be >= 1 and divide"):
        build_train_program(config)
