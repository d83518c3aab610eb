"""Text to token ids the same way on every backend: the chat template when the model has one."""

from __future__ import annotations


class ChatPrompts:
    """Needs `self.tokenizer` and `self.system_prompt`."""

    def chat(self, user: str) -> str:
        """The prompt text for a user message: the chat template when the model has one."""
        if not getattr(self.tokenizer, "chat_template", None):
            return user
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": user})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, text: str, special: bool = True) -> list[int]:
        # a chat-templated prompt already holds its special tokens as text
        add = special and not getattr(self.tokenizer, "chat_template", None)
        return self.tokenizer(text, add_special_tokens=add)["input_ids"]


def eos_ids(tokenizer, generation_config) -> set[int]:
    """Every token that ends a sequence: the generation config's and the tokenizer's."""
    eos = getattr(generation_config, "eos_token_id", None)
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    return set(eos) | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())
