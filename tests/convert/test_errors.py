"""Folders that cannot be converted fail with a message naming the tensor or file; no torch needed."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from llm.convert import ConversionError, load_hf
from tests.convert.hf_models import save


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2")
    save("gpt2", folder)
    return folder


def _copy(src, dst, edit_tensors=None, edit_config=None):
    dst.mkdir()
    tensors = load_file(str(src / "model.safetensors"))
    config = json.loads((src / "config.json").read_text())
    if edit_tensors:
        edit_tensors(tensors)
    if edit_config:
        edit_config(config)
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_unsupported_architecture(gpt2_dir, tmp_path):
    def t5(c):
        c.update(model_type="t5", architectures=["T5ForConditionalGeneration"])

    folder = _copy(gpt2_dir, tmp_path / "t5", edit_config=t5)
    with pytest.raises(ConversionError, match=r"unsupported architecture.*T5.*GPT2LMHeadModel"):
        load_hf(folder)


def test_missing_tensor(gpt2_dir, tmp_path):
    folder = _copy(
        gpt2_dir, tmp_path / "missing", lambda t: t.pop("transformer.h.1.mlp.c_fc.weight")
    )
    with pytest.raises(ConversionError, match=r"'transformer.h.1.mlp.c_fc.weight' is missing"):
        load_hf(folder)


def test_shape_disagrees_with_config(gpt2_dir, tmp_path):
    def wider(c):
        c["n_inner"] = 128

    folder = _copy(gpt2_dir, tmp_path / "shape", edit_config=wider)
    with pytest.raises(
        ConversionError,
        match=r"'transformer.h.0.mlp.c_fc.weight' has shape \(64, 96\).*\(64, 128\)",
    ):
        load_hf(folder)


def test_unexpected_tensor(gpt2_dir, tmp_path):
    def extra(t):
        t["transformer.h.0.attn.q_norm.weight"] = np.ones(16, np.float32)

    folder = _copy(gpt2_dir, tmp_path / "extra", extra)
    with pytest.raises(ConversionError, match=r"q_norm.weight.*no place"):
        load_hf(folder)


def test_pickle_checkpoint_is_refused_not_loaded(gpt2_dir, tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "config.json").write_text((gpt2_dir / "config.json").read_text())
    # Not a valid pickle: unpickling it would fail loudly, so a refusal proves it was not read.
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle")
    with pytest.raises(
        ConversionError, match=r"No model.safetensors.*pytorch_model.bin.*never loaded"
    ):
        load_hf(folder)


def test_bfloat16_tensors_load(gpt2_dir, tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file as load_torch
    from safetensors.torch import save_file as save_torch

    folder = tmp_path / "bf16"
    folder.mkdir()
    tensors = {
        k: v.to(torch.bfloat16) for k, v in load_torch(gpt2_dir / "model.safetensors").items()
    }
    save_torch(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text((gpt2_dir / "config.json").read_text())
    _, params, _ = load_hf(folder)
    expected = tensors["transformer.wte.weight"].float().numpy()
    np.testing.assert_array_equal(np.asarray(params["token_embed"]["embedding"]), expected)


def test_library_imports_without_torch_or_transformers(gpt2_dir):
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['transformers'] = None\n"
        "import llm.convert, llm.convert.workdir\n"
        f"cfg, params, _ = llm.convert.load_hf({str(gpt2_dir)!r})\n"
        "print(cfg.family)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "decoder"


def _rewrite_header(path, edit):
    """Rewrites the JSON header of a safetensors file with `edit(header)`, data unchanged."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    edit(header)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + raw[8 + length :])


@pytest.mark.parametrize("damage", ["truncated", "lying_offsets", "huge_header_length"])
def test_damaged_safetensors_file_names_the_file(gpt2_dir, tmp_path, damage):
    folder = _copy(gpt2_dir, tmp_path / damage)
    path = folder / "model.safetensors"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:20])
    elif damage == "lying_offsets":
        name = "transformer.wte.weight"
        _rewrite_header(path, lambda h: h[name].update(data_offsets=[0, 10**9]))
    else:
        path.write_bytes(struct.pack("<Q", 10**12) + path.read_bytes()[8:])
    with pytest.raises(ConversionError, match=r"model.safetensors is not a valid safetensors file"):
        load_hf(folder)


def test_index_shard_names_must_stay_inside_the_folder(gpt2_dir, tmp_path):
    outside = _copy(gpt2_dir, tmp_path / "outside")
    folder = tmp_path / "sharded"
    folder.mkdir()
    (folder / "config.json").write_text((gpt2_dir / "config.json").read_text())
    names = load_file(str(outside / "model.safetensors"))
    index = {"weight_map": {n: "../outside/model.safetensors" for n in names}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ConversionError, match=r"'../outside/model.safetensors'.*outside"):
        load_hf(folder)
