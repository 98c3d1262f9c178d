"""Property-based test of every training option and hyperparameter (issue 23): any value, of any type, is either
accepted as a value its own range admits, or refused with one ``ArgumentError`` line naming the flag; given on the
command line, a refused value exits with code 2 before anything is written. Examples are derandomized."""

from __future__ import annotations

import math
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yolorep.cli import main
from yolorep.errors import ArgumentError
from yolorep.options import Hyperparameters, TrainOptions
from yolorep.options.fields import flag_of

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))  # fmt: skip
# every option a user can set on `yolorep train` (hyperparameters included), but the file-valued ones
FIELDS = {
    f.name: (f, spec)
    for cls in (TrainOptions, Hyperparameters)
    for f, spec in cls.specs()
    if spec.cli and f.name not in ("hyp", "resume", "model", "data", "weights", "project", "name", "device")
}
VALUES = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 1.5, 2, 1e9, -1e-9, math.nan, math.inf, True, False, "", "auto", "x", "1e3"]),
    st.text(max_size=6),
    st.lists(st.integers(min_value=-3, max_value=40), max_size=3),
)


def _stored_value(options: TrainOptions, name: str):
    return getattr(options.hyp if name in {f.name for f, _ in Hyperparameters.specs()} else options, name)


@FUZZ
@given(name=st.sampled_from(sorted(FIELDS)), value=VALUES)
def test_any_value_is_accepted_within_its_range_or_refused_in_one_line(name, value):
    field, spec = FIELDS[name]
    try:
        options = TrainOptions.create({name: value})
    except ArgumentError as err:
        message = str(err)
        assert "\n" not in message and message.startswith(flag_of(field) + " "), message
        return
    kept = _stored_value(options, name)
    assert spec.check is None or kept is None or spec.check(kept) is None, (name, value, kept)
    if isinstance(kept, float):
        assert math.isfinite(kept), (name, value)


class _Accepted(Exception):
    """Raised in place of the training run once the options are accepted."""


def _accept(*args, **kwargs):
    raise _Accepted


@FUZZ
@given(name=st.sampled_from(sorted(FIELDS)), value=VALUES)
def test_a_value_on_the_command_line_starts_training_or_exits_2_writing_nothing(name, value, tmp_path_factory):
    project = tmp_path_factory.mktemp("runs")
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    argv = ["train", f"{name}={text}", "--project", str(project), "--device", "cpu", "--model", "yolorep-n.yaml"]
    with mock.patch("yolorep.engine.train.setup._run", _accept):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse refuses a value its type cannot read
            code = exit_.code
        except _Accepted:
            return
    assert code == 2, argv
    assert not any(Path(project).iterdir()), "a refused option must not create a run folder"
