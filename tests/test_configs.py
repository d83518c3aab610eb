"""Every config YAML under ponder/configs composes, its keys and defaults match the constructor its
`_target_` names (the constructor signature is the schema), and the choices that need no model
download instantiate."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf

from ponder.config import compose, instantiate

CONFIGS = Path(__file__).parents[1] / "ponder" / "configs"
GROUPS = sorted(p.name for p in CONFIGS.iterdir() if p.is_dir() and not p.name.startswith("_"))
CHOICES = [(g, p.stem) for g in GROUPS for p in sorted((CONFIGS / g).glob("*.yaml"))]

# The budget group has no _target_: Generator passes its keys to Budget.
TARGETS = {"budget": "ponder.budget.Budget"}

# Where a YAML deliberately differs from its constructor's default: (group, choice, key) -> why.
# None does today (a required parameter, such as a model's or a PRM's `path`, has no default to
# differ from); add an entry with its reason rather than loosen the check.
DELIBERATE: dict[tuple[str, str, str], str] = {
    **{
        ("model", m, "vllm"): "the vLLM engine's settings spelled out (None means EngineSettings' defaults; "
        "test_model_yamls_spell_out_the_vllm_engine_defaults checks them)"
        for m in ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
    },
    **{
        ("verifier", v, "vllm"): "a reward model's vLLM engine: a smaller KV cache than a policy's (None means "
        "EngineSettings' defaults)"
        for v in ("prm", "orm")
    },
}

# Choices that load weights when built (a hub download, or a checkpoint the user names): their keys
# and defaults are still checked, they are not instantiated.
LOADS_WEIGHTS = {(g, c) for g, c in CHOICES if g == "model"} | {
    ("decoder", "medusa"),
    ("verifier", "orm"),
    ("verifier", "prm"),
}


# Where a constructor's **kwargs go, by the name of that parameter: the samplers pass **sampling to
# Sampling, the searches **step to Stepper; any other name (a task's **kw) goes to the base class.
FORWARDED = {"sampling": "ponder.samplers.population.Sampling", "step": "ponder.search.steps.Stepper"}


def parameters(target) -> dict[str, inspect.Parameter]:
    """The keyword parameters a target accepts, following its **kwargs to where they go."""
    if not inspect.isclass(target):
        return _own(inspect.signature(target).parameters)
    found: dict[str, inspect.Parameter] = {}
    for cls in target.__mro__:
        if "__init__" not in vars(cls) or cls is object:
            continue
        params = inspect.signature(vars(cls)["__init__"]).parameters
        found = {**_own(params), **found}
        rest = next((p.name for p in params.values() if p.kind is p.VAR_KEYWORD), None)
        if rest is None:
            break
        if rest in FORWARDED:
            return {**parameters(get_object(FORWARDED[rest])), **found}
    return found


def _own(params) -> dict[str, inspect.Parameter]:
    return {k: p for k, p in params.items() if k != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def raw_yaml(group: str, choice: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONFIGS / group / f"{choice}.yaml"), resolve=False)


@pytest.mark.parametrize("group,choice", CHOICES, ids=[f"{g}={c}" for g, c in CHOICES])
def test_yaml_keys_and_defaults_match_the_constructor(group, choice):
    node = raw_yaml(group, choice)
    target = get_object(node.pop("_target_", None) or TARGETS[group])
    params = parameters(target)
    unknown = set(node) - set(params)
    assert not unknown, f"{group}/{choice}.yaml keys {sorted(unknown)} are not parameters of {target.__qualname__}"
    for key, value in node.items():
        default = params[key].default
        if default is inspect.Parameter.empty or (group, choice, key) in DELIBERATE:
            continue
        if isinstance(default, tuple):
            default = list(default)
        assert value == default, (
            f"{group}/{choice}.yaml sets {key}={value!r}, {target.__qualname__} defaults to "
            f"{default!r}: change one, or list it in DELIBERATE with the reason"
        )
    required = {k for k, p in params.items() if p.default is inspect.Parameter.empty}
    runtime = {"decoder"} if group == "model" else set()  # passed by Generator.from_config
    assert required - runtime <= set(node), f"{group}/{choice}.yaml lacks required {sorted(required - set(node))}"


def test_deliberate_differences_still_differ():
    for group, choice, key in DELIBERATE:
        node = raw_yaml(group, choice)
        default = parameters(get_object(node["_target_"]))[key].default
        assert default is not inspect.Parameter.empty and node[key] != default, (group, choice, key)


@pytest.mark.parametrize(
    "group,choice",
    [c for c in CHOICES if c not in LOADS_WEIGHTS],
    ids=[f"{g}={c}" for g, c in CHOICES if (g, c) not in LOADS_WEIGHTS],
)
def test_choice_composes_and_instantiates(group, choice, tmp_path):
    overrides = [f"{group}={choice}"]
    if (group, choice) == ("task", "jsonl"):
        data = tmp_path / "q.jsonl"
        data.write_text(json.dumps({"question": "1 + 1?", "answer": "2"}) + "\n")
        overrides.append(f"task.path={data}")
    cfg = compose(overrides)
    if group == "budget":
        from ponder.budget import Budget

        Budget(**cfg.budget)
        return
    built = instantiate(cfg[group], group)
    assert type(built).__module__.startswith("ponder.")
    if group == "task" and (choice != "math500" or (Path(os.environ.get("PONDER_DATA", "")) / "math500").is_dir()):
        assert len(built.load()) > 0  # local data only: gsm8k from $PONDER_DATA, humaneval from its package


@pytest.mark.parametrize("name", ["config", "leaderboard", "train_medusa", "train_prm"])
def test_root_configs_compose(name):
    from hydra import compose as hydra_compose, initialize_config_module

    with initialize_config_module("ponder.configs", version_base=None):
        cfg = hydra_compose(name)
    assert cfg.model._target_ == "ponder.models.load_model"


@pytest.mark.parametrize("choice", ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
def test_model_yamls_spell_out_the_vllm_engine_defaults(choice):
    from dataclasses import asdict

    from ponder.models.vllm import EngineSettings

    node = OmegaConf.to_container(OmegaConf.load(CONFIGS / "model" / f"{choice}.yaml"))
    assert node["vllm"] == asdict(EngineSettings())
