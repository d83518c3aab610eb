"""Errors caused by user input. The CLI prints these without a traceback."""

import math


class PonderError(Exception):
    """A mistake the user can fix; the message says what was wrong and what to do."""


class ModelNotFound(PonderError):
    pass


class DatasetError(PonderError):
    pass


class ConfigError(PonderError):
    pass


class PromptError(PonderError):
    """One prompt cannot be run (wrong type, longer than the model's context): the others can."""


def check_number(key: str, value, minimum=None, maximum=None, integer=False):
    """Validate a config value; the error names the key, the value given and what is allowed."""
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or (isinstance(value, float) and not math.isfinite(value)):
        raise ConfigError(f"{key} must be {kind}, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigError(f"{key} must be {bounds}, got {value!r}")
    return value


def check_seed(key: str, value):
    """A seed is an integer or null (None: not reproducible)."""
    return None if value is None else check_number(key, value, integer=True)
