"""``yolorep predict`` talks and writes what ultralytics users ask for: a line per image or frame, crops, labels
with or without scores, line width, classes, a window where there is a display."""

import logging

import cv2
import numpy as np
import pytest
import torch
from helpers import write_video

import yolorep
from yolorep.cli import main
from yolorep.engine.predict import display
from yolorep.engine.predict.predictor import predict

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = yolorep.build_model("yolorep-n.yaml", nc=3)
    model.names = ["circle", "square", "triangle"]
    return yolorep.save(model, tmp_path_factory.mktemp("weights") / "w.pt")


class FixedBoxModel(torch.nn.Module):
    """One box (16, 24, 48, 40) xyxy in input pixels, class 1 ("b") with score 0.9."""

    names = ["a", "b", "c"]
    stride = torch.tensor([8.0, 16.0, 32.0])

    def forward(self, x):
        out = torch.zeros(x.shape[0], 1, 7)
        out[..., :4] = torch.tensor([16.0, 24.0, 48.0, 40.0])
        out[..., 5] = 0.9
        return out


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("one.jpg", "two.png"):
        cv2.imwrite(str(folder / name), np.full((64, 64, 3), 30, np.uint8))
    return folder


def run(tmp_path, source, *flags, weights=None):
    argv = ["predict", "--weights", str(weights), "--source", str(source), "--imgsz", "64", "--device", "cpu"]
    return main([*argv, "--project", str(tmp_path / "runs"), *flags])


def test_a_line_per_image_and_per_video_frame(weights, folder, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    write_video(folder / "clip.avi", frames=3, fourcc="MJPG")
    assert run(tmp_path, folder, "--conf", "0", "--max-det", "2", "--no-save", weights=weights) == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(("image ", "video "))]
    assert len(lines) == 5  # clip.avi (3 frames), one.jpg, two.png
    for k in range(3):
        assert lines[k].startswith(f"video 1/3 (frame {k + 1}/3) {folder / 'clip.avi'}: 64x64 ")
    assert lines[3].startswith(f"image 2/3 {folder / 'one.jpg'}: 64x64 ")
    assert lines[4].startswith(f"image 3/3 {folder / 'two.png'}: 64x64 ")
    for line in lines:  # two detections counted per class ("2 circles, " or "1 circle, 1 square, "), then the time
        counts = line.split(": 64x64 ")[1].split(", ")[:-1]
        assert sum(int(c.split()[0]) for c in counts) == 2 and line.endswith("ms")


def test_quiet_prints_no_per_image_line(weights, folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(logging.getLogger("yolorep"), "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    assert run(tmp_path, folder, "--no-save", weights=weights) == 0
    assert "image 1/2" in capsys.readouterr().out
    assert main(["-q", *["predict", "--weights", str(weights), "--source", str(folder), "--imgsz", "64"],
                 *["--device", "cpu", "--no-save"]]) == 0  # fmt: skip
    assert capsys.readouterr().out == ""


def test_crops_labels_without_scores_and_classes(folder, tmp_path):
    image = cv2.imread(str(folder / "one.jpg"))
    image[24:40, 16:48] = (0, 0, 255)  # the fixed box, in red
    cv2.imwrite(str(folder / "one.png"), image)
    (folder / "one.jpg").unlink()
    (folder / "two.png").unlink()
    run_dir = predict(FixedBoxModel(), folder, imgsz=64, device="cpu", project=tmp_path / "runs", save_crop=True,
                      save_txt=True, save_conf=False, no_save=True)  # fmt: skip
    (crop,) = (run_dir / "crops" / "b").iterdir()
    assert crop.name == "one.jpg"
    pixels = cv2.imread(str(crop))
    assert pixels.shape == (16, 32, 3) and np.abs(pixels.astype(int) - (0, 0, 255)).max() < 40  # the box, cut out
    assert np.loadtxt(run_dir / "labels" / "one.txt").shape == (5,)  # cls cx cy w h, no score
    none = predict(FixedBoxModel(), folder, imgsz=64, device="cpu", project=tmp_path / "runs", classes=[0],
                   save_txt=True, no_save=True)  # fmt: skip
    assert (none / "labels" / "one.txt").read_text() == ""  # class 1 filtered out


def test_line_width(folder, tmp_path):
    thin = predict(FixedBoxModel(), folder, imgsz=64, device="cpu", project=tmp_path / "runs", line_width=1)
    thick = predict(FixedBoxModel(), folder, imgsz=64, device="cpu", project=tmp_path / "runs", line_width=5)
    drawn = [cv2.imread(str(run / "two.png")).astype(int) for run in (thin, thick)]
    inside = (slice(27, 37), 18)  # two pixels inside the left edge, below the label
    assert np.abs(drawn[0][inside] - 30).max() < 5 and np.abs(drawn[1][inside] - 30).max() > 50


def test_show_without_a_display_warns_once_and_predicts(folder, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(display.show_image, "warned", False, raising=False)
    assert display.display_problem() is not None
    run_dir = predict(FixedBoxModel(), folder, imgsz=64, device="cpu", project=tmp_path / "runs", show=True)
    assert sorted(p.name for p in run_dir.iterdir()) == ["one.jpg", "two.png"]
    assert caplog.text.count("show: there is no display") == 1


def test_save_and_no_save_contradict(weights, folder, tmp_path, caplog):
    assert run(tmp_path, folder, "--save", "--no-save", weights=weights) == 2
    assert "--save and --no-save: they contradict each other" in caplog.text
