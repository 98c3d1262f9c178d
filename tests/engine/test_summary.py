import logging

import pytest

import yolorep
from yolorep.engine.summary import info
from yolorep.errors import ArgumentError


def test_yaml_is_summarised_unfused_and_fused(caplog):
    with caplog.at_level(logging.INFO):
        summary = info("yolorep-n.yaml", imgsz=64)
    unfused, fused = summary["unfused"], summary["fused"]
    assert not unfused["fused"] and fused["fused"] and unfused["imgsz"] == fused["imgsz"] == 64
    assert fused["params"] < unfused["params"] and fused["gflops"] < unfused["gflops"]
    assert unfused["params"] == sum(p.numel() for p in yolorep.build_model("yolorep-n.yaml").parameters())
    assert "unfused:" in caplog.text and "fused 20 RepVGGBlock, 15 Conv" in caplog.text


def test_fused_checkpoint_has_no_unfused_row(tmp_path, caplog):
    path = yolorep.save(yolorep.build_model("yolorep-n.yaml", nc=2).fuse(), tmp_path / "fused.pt")
    with caplog.at_level(logging.INFO):
        summary = info(str(path), imgsz=64)
    assert summary["unfused"] is None and summary["fused"]["fused"]
    assert "unfused:" not in caplog.text and "  fused: " in caplog.text


def test_image_size_is_checked_before_counting():
    with pytest.raises(ArgumentError, match="--imgsz 100: must be a positive multiple of the model stride 32"):
        info("yolorep-n.yaml", imgsz=100)
