"""The `data` config group shared by every experiment."""

from __future__ import annotations

import os

import ml_collections

from llm.errors import ConfigError

# Where datasets live when `data_dir` is ''. Checked in this order, so a
# cluster can point every run at shared storage with one environment variable
# and a laptop falls back to where `tfds build` puts data anyway.
DATA_DIR_ENV_VARS = ("LLM_DATA_DIR", "TFDS_DATA_DIR")
DEFAULT_DATA_DIR = "~/tensorflow_datasets"

TASKS = ("lm", "seq2seq", "mlm", "classification", "span_qa")
TOKENIZERS = ("byte", "sentencepiece", "huggingface")


def default_data_config() -> ml_collections.ConfigDict:
    """Returns the `data` group with every field documented."""
    c = ml_collections.ConfigDict()
    # TFDS name with optional config, e.g. 'tiny_grammar', 'lm1b',
    # 'wmt14_translate/de-en'. Generated datasets (see llm.data.sources) are
    # built on first use; real ones must be prepared with launch/prepare.py.
    c.dataset = "tiny_grammar"
    # Weighted mixture of datasets for training, 'name:weight,name:weight' (weights are
    # normalised shares of tokens; e.g. 'tiny_grammar:0.7,tiny_numbers:0.3'); '' = train on
    # `dataset` alone. Every other field applies to each source; the tokenizer is
    # `dataset`'s. Eval scores each source's eval split (eval/<source>/loss). See
    # llm.data.mixture.
    c.mixture = ""
    # Root of the TFDS data directory. '' = $LLM_DATA_DIR, else $TFDS_DATA_DIR,
    # else ~/tensorflow_datasets (see resolve_data_dir).
    c.data_dir = ""
    # TFDS split read for training; any TFDS split spec ('train[:90%]') works.
    c.train_split = "train"
    # TFDS split read for evaluation (one finite pass per eval).
    c.eval_split = "validation"
    # Batch format: 'lm' (contracts' decoder batch), 'seq2seq'
    # (encoder_decoder batch), 'mlm' (encoder batch), or BERT fine-tuning:
    # 'classification' (GLUE: one [CLS] a [SEP] (b [SEP]) row per record, labels
    # [B]) or 'span_qa' (SQuAD: [CLS] question [SEP] context window [SEP] rows,
    # start/end positions [B]). Both pad one example per row (data.pack ignored).
    c.task = "lm"
    # 'byte' (UTF-8 bytes, vocab 259, nothing to train), 'sentencepiece' or
    # 'huggingface' (a transformers tokenizer from data.hf_tokenizer, e.g. BERT's WordPiece).
    c.tokenizer = "byte"
    # Vocabulary size of a sentencepiece model to train; ignored for 'byte'
    # (whose size is fixed, see llm.data.tokenizers.ByteTokenizer).
    c.vocab_size = 32000
    # Path of an existing sentencepiece .model. '' = train one from the train
    # split and cache it next to the data (reused on later runs).
    c.spm_model = ""
    # Folder of a Hugging Face tokenizer (tokenizer.json or vocab.txt, as save_pretrained
    # writes it) for data.tokenizer='huggingface': the vocabulary of an imported
    # checkpoint (launch.convert copies it into the workdir and sets this).
    c.hf_tokenizer = ""
    # Sentencepiece algorithm when training one: 'unigram' or 'bpe'.
    c.spm_type = "unigram"
    # Records of the train split a sentencepiece model is trained on (both
    # sides of a seq2seq pair: one shared vocabulary).
    c.spm_train_examples = 1_000_000
    # Feature holding the text of LM/MLM datasets ('' = the dataset's
    # default, 'text' for all known ones).
    c.text_key = ""
    # Features holding source and target of seq2seq datasets ('' = the
    # dataset's default, e.g. the two languages of a WMT pair).
    c.inputs_key = ""
    c.targets_key = ""
    # Row length of 'lm' and 'mlm' batches (tokens incl. BOS/EOS).
    c.seq_len = 128
    # LM documents longer than seq_len: 'split' into row-sized pieces (each
    # its own segment; nothing is lost, as pretraining wants) or 'truncate'
    # to their first seq_len tokens. Either way they are counted.
    c.lm_long_docs = "split"
    # Encoder and decoder row lengths of 'seq2seq' batches.
    c.inputs_len = 128
    c.targets_len = 128
    # Read token ids tokenized once into array_record (built by
    # ensure_dataset / launch.prepare) instead of tokenizing text each epoch.
    c.token_cache = False
    # Pack several documents per row (segment ids/positions keep them apart);
    # False pads each document to its own row.
    c.pack = True
    # How LM rows are packed: 'first_fit' keeps documents whole where they
    # fit (what the entropy canary needs; rows ~98% full on short documents,
    # less when documents are a large part of a row), 'concat' cuts the
    # chunk's token stream into full rows (GPT-style; 100% full, documents
    # cut at row ends). Other tasks always use first_fit.
    c.pack_mode = "first_fit"
    # Records read, tokenized and packed together (one batched read; rows
    # never mix chunks, so about half a row per chunk is padding).
    c.chunk_size = 1024
    # Rows the first-fit packer keeps open within a chunk: more pack tighter
    # and cost more per document.
    c.num_packing_bins = 16
    # Worker processes for preprocessing (grain mp_prefetch); 0 = in-process,
    # needed by tests and fine for tiny runs.
    c.num_workers = 0
    # Chunks buffered ahead per worker with num_workers > 0, else batches
    # buffered by a background thread (0 disables it).
    c.prefetch_buffer = 2
    # Threads reading and packing chunks per process, each with one chunk in
    # flight (0 = in the caller).
    c.read_threads = 2
    # Shuffle training records (seeded; reshuffled every epoch).
    c.shuffle = True
    # Masked LM: fraction of tokens chosen for prediction, and how chosen
    # tokens are replaced (BERT: 80% [MASK], 10% random, 10% unchanged).
    c.mask_rate = 0.15
    c.mask_token_prob = 0.8
    c.random_token_prob = 0.1
    # Masked LM: build next-sentence pairs (adds `nsp_labels`).
    c.nsp = False
    # Classification: the feature(s) holding the sentence or sentence pair,
    # comma-separated, one or two names ('' = the dataset's default, e.g.
    # 'premise,hypothesis' for glue/mnli; see llm.data.tasks.classification).
    c.sentence_keys = ""
    # Classification: the feature holding the class id ('' = 'label'); -1
    # (GLUE test splits) gives label_weights 0.
    c.label_key = ""
    # Span QA: questions keep their first max_query_len tokens (BERT: 64).
    c.max_query_len = 64
    # Span QA: contexts longer than a row are split into windows whose starts
    # are doc_stride tokens apart (BERT: 128).
    c.doc_stride = 128
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
        raise ConfigError(f"data.task={data_cfg.task!r}; use one of {TASKS}.")
    if data_cfg.tokenizer not in TOKENIZERS:
        raise ConfigError(f"data.tokenizer={data_cfg.tokenizer!r}; use one of {TOKENIZERS}.")
    for name in ("seq_len", "inputs_len", "targets_len"):
        if data_cfg[name] < 2:
            raise ConfigError(f"data.{name}={data_cfg[name]}; it must be >= 2.")
    if data_cfg.task == "mlm" and not 0 < data_cfg.mask_rate < 1:
        raise ConfigError(f"data.mask_rate={data_cfg.mask_rate}; it must be in (0, 1).")
    if data_cfg.mask_token_prob + data_cfg.random_token_prob > 1:
        raise ConfigError(
            "data.mask_token_prob + data.random_token_prob must be <= 1 "
            f"(got {data_cfg.mask_token_prob} + {data_cfg.random_token_prob})."
        )
    for name, allowed in (
        ("lm_long_docs", ("split", "truncate")),
        ("pack_mode", ("first_fit", "concat")),
        ("spm_type", ("unigram", "bpe")),
    ):
        if data_cfg[name] not in allowed:
            raise ConfigError(f"data.{name}={data_cfg[name]!r}; use one of {allowed}.")
    if data_cfg.chunk_size < 1 or data_cfg.num_packing_bins < 1:
        raise ConfigError("data.chunk_size and data.num_packing_bins must be >= 1.")
    if data_cfg.get("mixture"):
        from llm.data.mixture import parse_mixture  # a bad spec fails here, before reading

        parse_mixture(data_cfg.mixture)
    if data_cfg.num_workers < 0:
        raise ConfigError(f"data.num_workers={data_cfg.num_workers}; must be >= 0.")
    if data_cfg.task == "classification":
        keys = data_cfg.get("sentence_keys", "")
        names = [k.strip() for k in keys.split(",")] if keys else []
        if keys and (len(names) > 2 or not all(names)):
            raise ConfigError(
                f"data.sentence_keys={keys!r}; give one or two comma-separated feature "
                "names ('sentence' or 'premise,hypothesis'), or '' for the dataset's default."
            )
    if data_cfg.task == "span_qa":
        if data_cfg.max_query_len < 1 or data_cfg.doc_stride < 1:
            raise ConfigError(
                f"data.max_query_len={data_cfg.max_query_len} and data.doc_stride="
                f"{data_cfg.doc_stride} must be >= 1."
            )
        # [CLS] q [SEP] window [SEP] must leave room for one context token.
        if data_cfg.seq_len < data_cfg.max_query_len + 4:
            raise ConfigError(
                f"data.seq_len={data_cfg.seq_len} leaves no room for the context after a "
                f"question of data.max_query_len={data_cfg.max_query_len} tokens and 3 "
                "special tokens; raise seq_len or lower max_query_len."
            )


def sequence_lengths(data_cfg: ml_collections.ConfigDict) -> tuple[int, ...]:
    """Row lengths of a batch: (seq_len,) for lm/mlm, (inputs_len, targets_len) for seq2seq."""
    if data_cfg.task == "seq2seq":
        return (data_cfg.inputs_len, data_cfg.targets_len)
    return (data_cfg.seq_len,)
