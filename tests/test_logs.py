import io
import logging
import sys

from yolorep.logs import configure_logging, progress

LOGGER = logging.getLogger("yolorep")


def test_redirected_output_gets_plain_lines_not_a_redrawn_bar(monkeypatch, caplog):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    LOGGER.setLevel(logging.INFO)
    with caplog.at_level(logging.INFO, logger="yolorep"):
        bar = progress(range(5), desc="epoch 1/3", unit="batch", interval=0.0)
        for _ in bar:
            bar.set_postfix_str("box 1.0")
    lines = [r.getMessage() for r in caplog.records if r.name == "yolorep"]
    assert lines[0] == "epoch 1/3: 1/5 batch, 0s box 1.0" and lines[-1].startswith("epoch 1/3: 5/5 batch")
    assert sys.stderr.getvalue() == ""  # nothing drawn


def test_lines_are_spaced_by_the_interval(monkeypatch, caplog):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    LOGGER.setLevel(logging.INFO)
    with caplog.at_level(logging.INFO, logger="yolorep"):
        for _ in progress(range(1000), desc="val", interval=60.0):
            pass
    assert [r.getMessage() for r in caplog.records] == ["val: 1000/1000 it, 0s "]  # only the closing line


def test_a_terminal_gets_a_tqdm_bar_and_quiet_gets_nothing(monkeypatch, caplog):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    LOGGER.setLevel(logging.INFO)
    bar = progress(range(3), desc="predict")
    assert type(bar).__name__ == "tqdm" and list(bar) == [0, 1, 2]
    LOGGER.setLevel(logging.WARNING)
    with caplog.at_level(logging.DEBUG):
        assert list(progress(range(3), desc="quiet")) == [0, 1, 2]
    assert caplog.text == ""


def test_configure_logging_adds_one_handler_and_honours_the_environment(monkeypatch):
    monkeypatch.setattr(LOGGER, "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    configure_logging(True)
    configure_logging(True)
    assert len(LOGGER.handlers) == 1 and LOGGER.level == logging.INFO
    monkeypatch.setenv("YOLOREP_VERBOSE", "0")
    configure_logging()
    assert LOGGER.level == logging.WARNING and len(LOGGER.handlers) == 1
    configure_logging(debug=True)
    assert LOGGER.level == logging.DEBUG
