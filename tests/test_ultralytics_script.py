"""A script written against ultralytics' ``Results`` / ``Boxes`` / metrics API for detection runs unchanged on
yolorep (``tests/ultralytics_script.py``; ``benchmarks/ultralytics_script_check.py`` runs it on ultralytics)."""

import pytest
from ultralytics_script import exercise

import yolorep

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_ultralytics_script_runs_unchanged(trained_tiny, tiny_shapes_yaml, tmp_path):
    image = sorted((tiny_shapes_yaml.parent / "shapes" / "images" / "val").glob("*.jpg"))[0]
    checked = exercise(yolorep.YOLO, str(trained_tiny / "weights" / "best.pt"), str(image), tiny_shapes_yaml, tmp_path)
    assert checked["detections"] == 5
