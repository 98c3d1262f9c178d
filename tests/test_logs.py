import io
import logging
import sys

import pytest

from yolorep.logs import configure_logging, progress, root_logging_kept

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


def test_logging_configured_later_takes_the_lines_alone(monkeypatch, capsys):
    """A handler an application (or a library, via logging.basicConfig) adds to the root logger after yolorep attached
    its own gets yolorep's lines alone: none is printed twice."""
    monkeypatch.setattr(LOGGER, "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    configure_logging(True)
    child = logging.getLogger("yolorep.engine.something")
    child.info("before")
    assert capsys.readouterr().out == "before\n"
    root_lines = io.StringIO()
    logging.basicConfig(stream=root_lines, format="root: %(message)s")
    child.info("after")
    assert capsys.readouterr().out == "" and root_lines.getvalue() == "root: after\n"
    logging.getLogger().handlers[0].setLevel(logging.WARNING)  # a root handler that drops INFO: ours prints it
    child.info("info")
    child.warning("warning")
    assert capsys.readouterr().out == "info\n" and root_lines.getvalue().endswith("root: warning\n")


def test_root_logging_kept_undoes_what_a_library_configures(monkeypatch, capsys):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    with root_logging_kept():
        logging.warning("a library's warning")  # would call logging.basicConfig on an unconfigured root
        logging.getLogger().addHandler(logging.StreamHandler(io.StringIO()))
    assert logging.getLogger().handlers == [] and "a library's warning" in capsys.readouterr().err


def test_onnx_int8_quantization_prints_each_line_once(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    import numpy as np

    import yolorep
    from yolorep.engine.deploy import export
    from yolorep.engine.deploy.quantize import quantize_onnx

    monkeypatch.setattr(LOGGER, "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    configure_logging(False)  # exporting quietly; then the lines that matter
    weights = yolorep.save(yolorep.build_model("yolorep-n.yaml", nc=2), tmp_path / "m.pt")
    onnx_path = export(weights, format="onnx", imgsz=32)
    batch = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    quantize_onnx(onnx_path, tmp_path / "m_int8.onnx", [batch])
    configure_logging(True)
    logging.getLogger("yolorep.benchmark").info("the final table")
    captured = capsys.readouterr()
    assert logging.getLogger().handlers == []
    assert (captured.out + captured.err).count("the final table") == 1
