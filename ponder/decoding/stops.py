"""When a sequence is done: end-of-sequence tokens, stop strings, length."""

from __future__ import annotations

from typing import Sequence


class StopRule:
    """Checks each new token of a row; stop strings are looked for in the decoded tail only,
    so the check costs the same at token 10 and token 1000."""

    def __init__(self, tokenizer, eos_ids: set[int], stop: Sequence[str], max_new_tokens: int):
        self.tokenizer, self.eos_ids, self.stop = tokenizer, eos_ids, tuple(s for s in stop if s)
        self.max_new_tokens = max_new_tokens
        self.window = max((len(s) for s in self.stop), default=0) + 4  # tokens are >= 1 char

    def check(self, ids: list[int]) -> str | None:
        """Finish reason after the last token of `ids`, or None to go on."""
        if ids[-1] in self.eos_ids:
            return "stop"
        if self.stop:
            tail = self.tokenizer.decode(ids[-self.window :], skip_special_tokens=True)
            if any(s in tail for s in self.stop):
                return "stop"
        if len(ids) >= self.max_new_tokens:
            return "length"
        return None

    def matched(self, ids: list[int]) -> str | None:
        """The stop string that ended `ids`, or None (EOS, length, no stop strings)."""
        if not ids or ids[-1] in self.eos_ids or not self.stop:
            return None
        tail = self.tokenizer.decode(ids[-self.window :], skip_special_tokens=True)
        return next((s for s in self.stop if s in tail), None)

    def text(self, ids: list[int]) -> str:
        """The final text: special tokens dropped, cut before the first stop string."""
        if ids and ids[-1] in self.eos_ids:
            ids = ids[:-1]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        cut = min((i for s in self.stop if (i := text.find(s)) >= 0), default=len(text))
        return text[:cut]
