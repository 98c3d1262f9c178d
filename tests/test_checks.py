import pytest

from yolorep.checks import check_imgsz
from yolorep.errors import ArgumentError


@pytest.mark.parametrize("imgsz", [32, 64, 640, 1280])
def test_stride_multiples_pass(imgsz):
    assert check_imgsz(imgsz, 32) == imgsz


@pytest.mark.parametrize(
    ("imgsz", "hint"),
    [(100, "use 96 or 128"), (50, "use 32 or 64"), (20, "use 32"), (0, "use 32"), (-64, "use 32")],
)
def test_other_sizes_are_refused_with_the_nearest_valid_ones(imgsz, hint):
    with pytest.raises(
        ArgumentError, match=f"^--imgsz {imgsz}: must be a positive multiple of the model stride 32; {hint}$"
    ):
        check_imgsz(imgsz, 32)


def test_flag_name_and_type():
    with pytest.raises(
        ArgumentError, match="^imgsz 70: must be a positive multiple of the model stride 64; use 64 or 128$"
    ):
        check_imgsz(70, 64, flag="imgsz")
    with pytest.raises(ArgumentError, match="must be an integer number of pixels"):
        check_imgsz(64.0, 32)
