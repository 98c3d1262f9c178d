"""``../shared/anchors/side_by_side.py`` with each tool's own OpenVINO export added (issue 30): the same timing loop
(interleaved rounds, median of every call), and two more cases beside the anchor's:

  v8n-ulov    ultralytics' ``export(format="openvino")`` of YOLOv8n, run by its own ``AutoBackend``
  yr-n-yrov   ``yolorep export --format openvino`` (default precision) of yolorep-n, run by ``load_backend``

Both are timed from a float tensor to decoded boxes, like every anchor case. Run in the ultralytics venv
(``/work/shared/anchors/README.md``), from the repository root, on a quiet machine:

    PYTHONPATH=$PWD /tmp/anchors/bin/python benchmarks/deploy_side_by_side.py --threads 2 --rounds 10 --calls 5 \\
        --ov --cases v8n-ov,yr-n-f-ov,v8n-ulov,yr-n-yrov

Every anchor flag (``--bf16 --ort --int8 --calib-dir ...``) is passed through.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ANCHORS = Path(os.environ.get("ANCHORS", "/work/shared/anchors"))


def add_own_exports(cases: dict, threads: int) -> None:
    """The two tools' own OpenVINO export and runtime, as ``cases[name] = dict(fn, params, gflops)``.

    ultralytics sets torch's thread count to one less than the CPU count when it selects a device, and yolorep's
    backend compiles with torch's thread count, so it is set back to ``threads`` before yolorep's backend is built.
    """
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.autobackend import AutoBackend

    import yolorep
    from yolorep.engine.deploy import export, load_backend

    tmp = Path(tempfile.mkdtemp(prefix="deploy_side_by_side_"))
    cwd = Path.cwd()
    os.chdir(tmp)  # ultralytics writes a YAML-built model's export into the working folder
    try:
        exported = YOLO("yolov8n.yaml").export(format="openvino", imgsz=640, batch=1)
    finally:
        os.chdir(cwd)
    # export returns the path it wrote, relative or absolute (tmp / an absolute path is that path)
    ultralytics_backend = AutoBackend(str(tmp / exported), device=torch.device("cpu"))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    weights = yolorep.save(yolorep.build_model("yolorep-n.yaml", nc=80).eval(), tmp / "yolorep-n.pt")
    yolorep_backend = load_backend(export(weights, format="openvino", imgsz=640), "cpu")
    print(f"yolorep backend: {yolorep_backend.describe()}")
    for name, backend, like in (("v8n-ulov", ultralytics_backend, "v8n"), ("yr-n-yrov", yolorep_backend, "yr-n-f")):
        base = cases.get(like, {})
        cases[name] = dict(fn=backend, params=base.get("params", 0), gflops=base.get("gflops", 0.0))


def main() -> None:
    sys.path.insert(0, str(ANCHORS))
    import side_by_side

    build = side_by_side.build

    def build_with_exports(args):
        cases, x = build(args)
        wanted = set(args.cases.split(",")) if args.cases else {"v8n-ulov", "yr-n-yrov"}
        if wanted & {"v8n-ulov", "yr-n-yrov"}:
            add_own_exports(cases, args.threads)
        return cases, x

    side_by_side.build = build_with_exports
    side_by_side.main()


if __name__ == "__main__":
    main()
