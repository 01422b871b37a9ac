"""Host-side prompt batching and output trimming; bad input fails clearly."""

import numpy as np
import pytest

from llm.decode import batch_prompts, generated_ids


def test_batch_prompts_right_pads_and_reports_lengths():
    prompt, lengths = batch_prompts([[1, 5, 6], [1], [1, 7]], pad_id=0)
    np.testing.assert_array_equal(prompt, [[1, 5, 6], [1, 0, 0], [1, 7, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 2])
    assert prompt.dtype == np.int32 and lengths.dtype == np.int32


def test_bad_prompts_fail_or_truncate_with_warning():
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        batch_prompts([[1, 2], []])
    with pytest.raises(ValueError, match="prompt 0 has 4 tokens, more than max_prompt_len=3"):
        batch_prompts([[1, 2, 3, 4]], max_prompt_len=3)
    with pytest.warns(UserWarning, match="truncated to 3"):
        prompt, lengths = batch_prompts([[1, 2, 3, 4], [1]], max_prompt_len=3, truncate=True)
    np.testing.assert_array_equal(prompt, [[2, 3, 4], [1, 0, 0]])
    with pytest.warns(UserWarning):
        prompt, _ = batch_prompts([[1, 2, 3, 4]], max_prompt_len=3, truncate=True, keep="start")
    np.testing.assert_array_equal(prompt, [[1, 2, 3]])


def test_generated_ids_drop_prompt_and_stop_before_eos():
    tokens = np.array([[1, 5, 6, 9, 2, 0], [1, 7, 8, 8, 8, 8]])
    assert generated_ids(tokens, [3, 1], eos_id=2) == [[9], [7, 8, 8, 8, 8]]
    assert generated_ids(tokens, 1, eos_id=2) == [[5, 6, 9], [7, 8, 8, 8, 8]]
