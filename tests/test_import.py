import os
import subprocess
import sys


def test_import_has_no_side_effects(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import yolorep, yolorep.nn\n"
        "assert dict(os.environ) == before, 'environment changed'\n"
        "assert 'cv2' not in sys.modules, 'yolorep.nn must not import OpenCV'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_top_level_import_is_light():
    result = subprocess.run(
        [sys.executable, "-c", "import sys, yolorep; print('torch' in sys.modules)"], capture_output=True, text=True
    )
    assert result.stdout.strip() == "False"
