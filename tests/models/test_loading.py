import time

import pytest
import torch

from ponder import Budget, SamplingParams
from ponder.errors import ModelNotFound
from ponder.models.loading import converted_gguf, file_sha256, pick_dtype, resolve


def test_resolve_kinds_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("PONDER_MODELS", str(tmp_path))
    with pytest.raises(ModelNotFound, match="fetch_models.sh qwen-0.5b"):
        resolve("qwen2.5-coder-0.5b")
    assert resolve("Qwen/Qwen2.5-Coder-0.5B-Instruct") == ("pretrained", "Qwen/Qwen2.5-Coder-0.5B-Instruct")
    with pytest.raises(ModelNotFound, match="not a preset"):
        resolve("no-such-model")
    with pytest.raises(ModelNotFound, match="does not exist"):
        resolve(str(tmp_path / "x.gguf"))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.gguf").write_bytes(b"")
    assert resolve(str(tmp_path / "m")) == ("gguf", str(tmp_path / "m" / "w.gguf"))
    with pytest.raises(ModelNotFound, match="model.dtype"):
        pick_dtype("fp8", torch.device("cpu"))


def test_a_first_gguf_load_says_what_it_does_and_where_it_caches(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PONDER_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "w.gguf"
    gguf.write_bytes(b"not really a gguf file")  # the conversion then fails: the message came first
    with pytest.raises(Exception):
        converted_gguf(str(gguf))
    err = capsys.readouterr().err
    assert "converting w.gguf (0 MB) once to safetensors" in err and str(tmp_path / "cache" / "gguf") in err


@pytest.mark.real_model
def test_gguf_is_converted_once_into_a_cache_keyed_by_its_hash(smollm2):
    kind, gguf = resolve("smollm2-135m")
    assert kind == "gguf"
    t = time.perf_counter()
    folder = converted_gguf(gguf)
    assert time.perf_counter() - t < 10  # the fixture already converted it: this is a cache hit
    assert folder.endswith(file_sha256(gguf)[:24])


@pytest.mark.real_model
def test_real_model_greedy_equals_transformers_and_has_a_chat_template(smollm2):
    prompt = smollm2.chat("What is 2 + 3?")
    assert "<|im_start|>assistant" in prompt
    out = smollm2.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=24), Budget())[0][0]
    ids = torch.tensor([smollm2.encode(prompt)])
    ref = smollm2.network.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False)
    ref = ref[0, ids.shape[1] :].tolist()
    assert out.token_ids == ref[: len(out.token_ids)] and out.finish_reason in ("stop", "length")
    assert "5" in out.text
