"""Shared fakes: a tiny random Llama built in code (no download) and a scripted LM."""

from __future__ import annotations

import functools

import torch

from ponder.budget import ModelShape
from ponder.protocols import Capabilities
from ponder.types import Completion

CORPUS = [
    "Tom has 3 apples and buys 5 more. How many apples does he have? The answer is 8.",
    "Solve step by step. 2 + 2 = 4. 10 - 3 = 7. #### 42",
    "def f(x):\n    return x + 1\n",
    "Yes No Is the proposed solution correct? Problem: Proposed solution:",
] * 4


@functools.lru_cache(maxsize=None)
def tiny_tokenizer(chat: bool = False):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=320, min_frequency=1, special_tokens=["<eos>", "<pad>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<eos>", pad_token="<pad>")
    if chat:
        tok.chat_template = (
            "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}<eos>{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}"
        )
    return tok


def tiny_network(seed: int = 0, layers: int = 2, classifier: bool = False, num_labels: int = 1):
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    tok = tiny_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        num_labels=num_labels,
    )
    torch.manual_seed(seed)
    net = (LlamaForSequenceClassification if classifier else LlamaForCausalLM)(cfg).eval()
    with torch.no_grad():  # sharpen the random distribution so samples are not uniform noise
        head = net.score if classifier else net.lm_head
        head.weight.mul_(8.0)
    return net


def engine_network(seed: int = 0):
    """A tiny random Llama every backend runs: head_dim 64 (vLLM's CPU attention has no 16), and
    an end-of-sequence token likely enough that samples end on it: its output row is a common
    token's, a little larger (about 6 of 16 samples of 30 tokens end at EOS)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=1024,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    net = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        net.lm_head.weight.mul_(8.0)
        net.lm_head.weight[tok.eos_token_id] = net.lm_head.weight[207] * 1.05
    return net


def assert_kept_kv(model, prompt: str, comp) -> None:
    """`comp`, generated from `prompt` with extends, left its KV in the model's prefix cache: equal
    to a fresh prefill's, and a prompt that extends it computes only what follows it."""
    from ponder.budget import Budget

    ids = model.encode(prompt) + comp.token_ids[:-1]
    entry, shared = model.prefix_cache.lookup(ids)
    assert shared == len(ids) and entry.output is None
    with torch.no_grad():
        fresh = model.network(torch.tensor([ids]), use_cache=True).past_key_values
    for (k, v), layer in zip(entry.kv, fresh.layers, strict=True):
        torch.testing.assert_close(k, layer.keys, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(v, layer.values, atol=1e-5, rtol=1e-4)
    budget, more = Budget(), ids + comp.token_ids[-1:] + ids[:3]
    nxt = model.prefill(more, budget)
    assert budget.usage.prompt_tokens == 4 and budget.usage.cached_prompt_tokens == len(ids)
    with torch.no_grad():
        cold = model.network(torch.tensor([more])).logits[0, -1]
    torch.testing.assert_close(nxt.output, cold, atol=1e-4, rtol=1e-4)


def tiny_model(seed: int = 0, chat: bool = False, **kw):
    from ponder.models.hf import HFModel

    return HFModel(tiny_network(seed), tiny_tokenizer(chat), name="tiny", **kw)


class ScriptedModel:
    """A LanguageModel whose completions are given in advance, served in order."""

    name = "scripted"
    tokenizer = None
    shape = ModelShape(params=1000, layers=1, d_attn=8)
    capabilities = Capabilities("scripted")

    def __init__(self, texts, logprobs=None):
        self.texts, self.logprobs, self.calls = list(texts), logprobs, []

    def chat(self, user):
        return user

    def encode(self, text, special=True):
        return list(range(len(text.split())))

    def generate(self, prompts, params, budget):
        self.calls.append(params)
        out = []
        for _ in prompts:
            row = []
            for i, t in zip(range(params.n), params.temperatures()):
                if not self.texts or budget.affordable_rows(1, 0.0, forward=False) < 1:
                    row.append(Completion("", [], [], "budget", t))
                    continue
                text = self.texts.pop(0)
                lp = self.logprobs.pop(0) if self.logprobs else -1.0
                budget.charge(generated_tokens=1)
                row.append(Completion(text, [1], [lp], "stop", t))
            out.append(row)
        return out

    def generate_many(self, requests):
        """Each request in turn; one that raises leaves the script as it was (nothing served)."""
        texts, logprobs = list(self.texts), list(self.logprobs) if self.logprobs else self.logprobs
        try:
            return [self.generate(*r) for r in requests]
        except Exception:
            self.texts, self.logprobs = texts, logprobs
            raise

    def score(self, prompts, continuations, budget):
        return [0.0 for _ in prompts]


class TableVerifier:
    """Scores by looking the candidate's text up in a table."""

    name = "table"
    scores_steps = False
    needs_model = False
    same_answer = staticmethod(lambda a, b: a == b)

    def bind(self, model):
        pass

    def __init__(self, table):
        self.table = table

    def extract_answer(self, text):
        from ponder.verifiers.math import extract_answer

        return extract_answer(text)

    def score(self, prompt, candidates, budget):
        budget.charge(verifier_calls=len(candidates))
        return [self.table[c.text] for c in candidates]
