"""The `data` config group shared by every experiment."""

from __future__ import annotations

import os

import ml_collections

# Where datasets live when `data_dir` is ''. Checked in this order, so a
# cluster can point every run at shared storage with one environment variable
# and a laptop falls back to where `tfds build` puts data anyway.
DATA_DIR_ENV_VARS = ("LLM_DATA_DIR", "TFDS_DATA_DIR")
DEFAULT_DATA_DIR = "~/tensorflow_datasets"

TASKS = ("lm", "seq2seq", "mlm")
TOKENIZERS = ("byte", "sentencepiece")


def default_data_config() -> ml_collections.ConfigDict:
    """Returns the `data` group with every field documented."""
    c = ml_collections.ConfigDict()
    # TFDS name with optional config, e.g. 'tiny_grammar', 'lm1b',
    # 'wmt14_translate/de-en'. Generated datasets (see llm.data.sources) are
    # built on first use; real ones must be prepared with launch/prepare.py.
    c.dataset = "tiny_grammar"
    # Root of the TFDS data directory. '' = $LLM_DATA_DIR, else $TFDS_DATA_DIR,
    # else ~/tensorflow_datasets (see resolve_data_dir).
    c.data_dir = ""
    # TFDS split read for training; any TFDS split spec ('train[:90%]') works.
    c.train_split = "train"
    # TFDS split read for evaluation (one finite pass per eval).
    c.eval_split = "validation"
    # Batch format: 'lm' (contracts' decoder batch), 'seq2seq'
    # (encoder_decoder batch) or 'mlm' (encoder batch).
    c.task = "lm"
    # 'byte' (UTF-8 bytes, vocab 259, nothing to train) or 'sentencepiece'.
    c.tokenizer = "byte"
    # Vocabulary size of a sentencepiece model to train; ignored for 'byte'
    # (whose size is fixed, see llm.data.tokenizers.ByteTokenizer).
    c.vocab_size = 32000
    # Path of an existing sentencepiece .model. '' = train one from the train
    # split and cache it next to the data (reused on later runs).
    c.spm_model = ""
    # Sentencepiece algorithm when training one: 'unigram' or 'bpe'.
    c.spm_type = "unigram"
    # Feature holding the text of LM/MLM datasets ('' = the dataset's
    # default, 'text' for all known ones).
    c.text_key = ""
    # Features holding source and target of seq2seq datasets ('' = the
    # dataset's default, e.g. the two languages of a WMT pair).
    c.inputs_key = ""
    c.targets_key = ""
    # Row length of 'lm' and 'mlm' batches (tokens incl. BOS/EOS).
    c.seq_len = 128
    # Encoder and decoder row lengths of 'seq2seq' batches.
    c.inputs_len = 128
    c.targets_len = 128
    # Pack several documents per row (segment ids/positions keep them apart);
    # False pads each document to its own row.
    c.pack = True
    # Documents kept open at once by the first-fit packer: more bins pack
    # tighter but delay output and use memory.
    c.num_packing_bins = 16
    # Worker processes for preprocessing (grain mp_prefetch); 0 = in-process,
    # needed by tests and fine for tiny runs.
    c.num_workers = 0
    # Batches buffered ahead: per worker with num_workers > 0, else by a
    # background thread (0 disables it).
    c.prefetch_buffer = 2
    # Threads reading records from array_record files per process.
    c.read_threads = 4
    # Shuffle training records (seeded; reshuffled every epoch).
    c.shuffle = True
    # Masked LM: fraction of tokens chosen for prediction, and how chosen
    # tokens are replaced (BERT: 80% [MASK], 10% random, 10% unchanged).
    c.mask_rate = 0.15
    c.mask_token_prob = 0.8
    c.random_token_prob = 0.1
    # Masked LM: build next-sentence pairs (adds `nsp_labels`).
    c.nsp = False
    return c


def resolve_data_dir(data_dir: str) -> str:
    """Returns the absolute data directory for a config's `data_dir`."""
    if not data_dir:
        data_dir = next(
            (os.environ[v] for v in DATA_DIR_ENV_VARS if os.environ.get(v)),
            DEFAULT_DATA_DIR,
        )
    return os.path.abspath(os.path.expanduser(data_dir))


def validate(data_cfg: ml_collections.ConfigDict) -> None:
    """Fails with a message naming the bad value and the fix."""
    if data_cfg.task not in TASKS:
        raise ValueError(f"data.task={data_cfg.task!r}; use one of {TASKS}.")
    if data_cfg.tokenizer not in TOKENIZERS:
        raise ValueError(f"data.tokenizer={data_cfg.tokenizer!r}; use one of {TOKENIZERS}.")
    for name in ("seq_len", "inputs_len", "targets_len"):
        if data_cfg[name] < 2:
            raise ValueError(f"data.{name}={data_cfg[name]}; it must be >= 2.")
    if data_cfg.num_workers < 0:
        raise ValueError(f"data.num_workers={data_cfg.num_workers}; must be >= 0.")
