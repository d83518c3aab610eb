import os
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
os.environ.setdefault("PONDER_DATA", str(SHARED / "data"))
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # Triton kernels run on CPU in the interpreter


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct (CI fetches it; see .ci/run)."""
    from ponder.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def engine_folder(tmp_path_factory):
    """`fakes.engine_network` saved as a local folder: the model of the backend contract suite."""
    from fakes import engine_network, tiny_tokenizer

    folder = tmp_path_factory.mktemp("engine-lm")
    engine_network().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A tiny random causal LM saved as a local folder, loadable by model.path=."""
    from fakes import tiny_network, tiny_tokenizer

    folder = tmp_path_factory.mktemp("tiny-lm")
    tiny_network().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)
