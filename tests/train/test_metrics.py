"""metrics.jsonl after a kill mid-append: a torn last line is dropped; other damage is named."""

import json
import logging

import pytest

from llm.errors import UserError
from llm.train.metrics import MetricWriter, read_metrics


def _rows(*steps: int) -> str:
    return "".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in steps)


def test_torn_last_line_is_dropped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_rows(1, 2, 3) + '{"step": 4, "lo')
    with caplog.at_level(logging.WARNING):
        rows = read_metrics(tmp_path)
        writer = MetricWriter(tmp_path, resume_step=3)
    writer.write(4, {"loss": 0.25})
    writer.close()
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4]
    assert "metrics.jsonl" in caplog.text and "line 4" in caplog.text


def test_corrupt_line_elsewhere_names_the_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_rows(1) + '{"step": 2, "lo\n' + _rows(3))
    for read in (lambda: read_metrics(tmp_path), lambda: MetricWriter(tmp_path, resume_step=3)):
        with pytest.raises(UserError, match=r"metrics.jsonl line 2 is not a JSON object"):
            read()
