"""Hugging Face interop: safetensors checkpoints of GPT-2, LLaMA, Mixtral, BERT and
Marian <-> our params.

Needs neither torch nor transformers (safetensors' numpy reader only); no
pickle is ever loaded. `load_hf`/`save_hf` convert in memory;
`import_to_workdir`/`export_workdir` (llm.convert.workdir) go through the
orbax checkpoints that launch.train and launch.decode use.
"""

from llm.convert.api import load_hf, save_hf
from llm.convert.hf_files import ConversionError
from llm.convert.registry import supported

__all__ = ["ConversionError", "load_hf", "save_hf", "supported"]
