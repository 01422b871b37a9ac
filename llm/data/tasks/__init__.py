"""Tasks: records -> examples -> rows in a docs/contracts.md batch format."""

from llm.data.tasks.base import Task
from llm.data.tasks.classification import ClassificationTask
from llm.data.tasks.lm import LMTask
from llm.data.tasks.mlm import MLMTask
from llm.data.tasks.seq2seq import Seq2SeqTask
from llm.data.tasks.span_qa import SpanQATask

__all__ = ["ClassificationTask", "LMTask", "MLMTask", "Seq2SeqTask", "SpanQATask", "Task"]
