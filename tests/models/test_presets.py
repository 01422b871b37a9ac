"""Paper presets: valid configs and parameter counts within 3% of the papers."""

import pytest

from llm.models import ModelConfig, count_params
from llm.models.presets import PAPER_PARAMS, PRESETS, get_preset


def test_every_preset_is_a_valid_config_that_keeps_its_values():
    for name in PRESETS:
        preset = get_preset(name)
        fields = ModelConfig.from_dict(preset).to_dict()
        assert {k: fields[k] for k in preset} == preset, name


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_param_count_within_3_percent_of_paper(name):
    # Scanned layers trace one layer; the count is the same as unrolled.
    n = count_params(get_preset(name, scan_layers=True))
    paper = PAPER_PARAMS[name]
    assert abs(n / paper - 1.0) <= 0.03, f"{name}: {n:,} vs paper {paper:,.0f}"


def test_count_same_scanned_or_unrolled():
    d = get_preset("gpt2_124m")
    assert count_params(d) == count_params(dict(d, scan_layers=True)) == 124_439_808


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown model preset 'gpt4'.*gpt2_124m"):
        get_preset("gpt4")
