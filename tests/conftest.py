import logging
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from helpers import TINY_HYP  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for modules of tiny forward passes: when other processes keep the cores busy, OpenMP
    threads wait on each other and a two-thread forward pass can run 100x slower than a one-thread one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def _restore_yolorep_logging():
    logger = logging.getLogger("yolorep")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers = handlers


# Tests and module-scoped fixtures that configure logging (the CLI, YOLO(verbose=...)) must not change what later
# tests capture: restored after every test and after every module.
_yolorep_logging = pytest.fixture(autouse=True)(_restore_yolorep_logging)
_yolorep_logging_per_module = pytest.fixture(autouse=True, scope="module")(_restore_yolorep_logging)


@pytest.fixture(scope="session", autouse=True)
def _user_cache_folder(tmp_path_factory):
    """The label caches (and --cache disk copies of read-only data) go to the user cache folder: one under the
    session's temporary folder, never the user's ~/.cache. Subprocesses inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user_cache")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _no_dataloader_sigchld_handler():
    """Keep torch's DataLoader from installing its SIGCHLD handler in the test process. A loader with workers
    installs it for good; with it in place, once OpenVINO had run in the process, a later test's subprocess
    exiting crashed the whole test process (SIGSEGV while waiting on the child's pipe)."""
    from torch.utils.data._utils import signal_handling

    installed = signal_handling._SIGCHLD_handler_set
    signal_handling._SIGCHLD_handler_set = True
    yield
    signal_handling._SIGCHLD_handler_set = installed


@pytest.fixture(scope="session")
def tiny_shapes_yaml(tmp_path_factory) -> Path:
    """A dataset YAML for a tiny synthetic shapes set (12 train / 6 val images, ~96 px), generated once."""
    folder = tmp_path_factory.mktemp("tiny_data")
    path = folder / "shapes.yaml"
    path.write_text(
        "path: shapes\n"
        "train: images/train\n"
        "val: images/val\n"
        "train_json: annotations/instances_train.json\n"
        "val_json: annotations/instances_val.json\n"
        "synthetic: {n_train: 12, n_val: 6, imgsz: 96, seed: 5, max_objects: 3}\n"
    )
    return path


@pytest.fixture(scope="session")
def trained_tiny(tiny_shapes_yaml, tmp_path_factory) -> Path:
    """The run folder of yolorep-n trained for 2 epochs at 64 px on the tiny set."""
    from yolorep.engine.train.setup import train

    project = tmp_path_factory.mktemp("runs")
    results = train(
        model="yolorep-n.yaml", data=tiny_shapes_yaml, epochs=2, imgsz=64, batch=4, device="cpu", workers=0,
        project=project, name="tiny", hyp=dict(TINY_HYP), optimizer="auto",
    )  # fmt: skip
    return Path(results["save_dir"])


@pytest.fixture
def ctx(tiny_shapes_yaml, trained_tiny, tmp_path):
    """The fault tests' context (tests/faults.py): a writable copy of the tiny set beside a trained run."""
    from faults import make_ctx

    return make_ctx(tiny_shapes_yaml, trained_tiny, tmp_path)
