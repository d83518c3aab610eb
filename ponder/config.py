"""Hydra composition and instantiation: the only library module that imports Hydra (used by
the CLI, Generator.from_overrides and benchmark entry points)."""

from __future__ import annotations

from typing import Sequence

from ponder.errors import ConfigError, PonderError


def compose(overrides: Sequence[str] = ()):
    """The config the CLI would build from these overrides."""
    from hydra import compose as hydra_compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_module("ponder.configs", version_base=None):
            return hydra_compose("config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(str(e)) from None


def instantiate(node, group: str, **kwargs):
    """Build one component; user mistakes come back as PonderError naming the group."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    from omegaconf.errors import OmegaConfBaseException

    try:
        return hydra_instantiate(node, _convert_="all", **kwargs)
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad {group} config: {config_message(e, group)}") from None
    except InstantiationException as e:
        cause = e.__cause__
        while cause is not None and not isinstance(cause, PonderError) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, PonderError):
            raise cause from None
        if isinstance(cause, (TypeError, ValueError)):
            raise ConfigError(f"bad {group} config: {cause}") from None
        raise


def resolved(node, group: str) -> dict:
    """A config group as plain values; a missing required value or a bad interpolation names the key."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad {group} config: {config_message(e, group)}") from None


def config_message(e, group: str) -> str:
    """OmegaConf's message without its object dump, with the key spelled as on the command line."""
    from omegaconf.errors import MissingMandatoryValue

    key = str(getattr(e, "full_key", None) or "")
    key = key if key.startswith(group + ".") or not key else f"{group}.{key}"
    if isinstance(e, MissingMandatoryValue):
        return f"{key} is required and has no value; set {key}=..."
    return str(e).split("\n")[0] + (f" (key {key})" if key else "")
