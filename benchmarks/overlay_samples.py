"""Sample overlays at 320x240 and 1920x1080, to look at (not a test).

Draws the bundled demo's first frame with its boxes (``assets/demo_boxes.json``) and the keypoints
famipose predicted for it, once at the clip's 320x240 and once upscaled to 1920x1080 (the frame with
PIL, the coordinates by the same factors), with :func:`famicli.inference.render.draw_poses`. The
1080p picture is drawn at full size, then saved downscaled (``--docs-width``, 960 by default) with a
256-colour palette, to keep the docs light. Prints each size's draw time (median of ``--repeats`` calls).

    famipose predict assets/demo.mp4 --out /tmp/ovl -q
    python benchmarks/overlay_samples.py [--pred /tmp/ovl/demo.posetrack.json] [--out docs/img]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from famicli.inference.render import draw_poses

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def first_frame(video: Path) -> np.ndarray:
    """The video's first frame, (H, W, 3) uint8 RGB."""
    with av.open(str(video)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def frame0_persons(boxes_file: Path, pred_file: Path):
    """Frame 0's boxes (N, 4) x, y, w, h, track ids (N,) and poses (N, 17, 3) x, y, score: the boxes
    from the boxes file, the keypoints from the prediction's annotation with the same track id."""
    boxes = [b for b in json.loads(boxes_file.read_text()) if b["frame_index"] == 0]
    pred = json.loads(pred_file.read_text())
    image_id = min(image["id"] for image in pred["images"])
    by_track = {a["track_id"]: a for a in pred["annotations"] if a["image_id"] == image_id}
    poses = np.zeros((len(boxes), 17, 3))
    for i, b in enumerate(boxes):
        ann = by_track.get(b["track_id"])
        if ann is not None:  # (17*3,) x, y, v -> (17, 3) x, y, score
            poses[i] = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)
            poses[i, :, 2] = ann["scores"]
    return np.array([b["bbox"] for b in boxes], dtype=float), np.array([b["track_id"] for b in boxes]), poses


def timed_draw(frame, boxes, tids, poses, repeats: int):
    """The overlay and the median seconds one ``draw_poses`` call took."""
    seconds = []
    for _ in range(repeats):
        t = time.perf_counter()
        overlay = draw_poses(frame, boxes, tids, poses)
        seconds.append(time.perf_counter() - t)
    return overlay, statistics.median(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=ASSETS / "demo.mp4")
    ap.add_argument("--boxes", type=Path, default=ASSETS / "demo_boxes.json")
    ap.add_argument("--pred", type=Path, default=Path("/tmp/ovl/demo.posetrack.json"))
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    ap.add_argument("--docs-width", type=int, default=960, help="width the 1080p picture is saved at")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()

    small = first_frame(args.video)
    boxes, tids, poses = frame0_persons(args.boxes, args.pred)
    height, width = small.shape[:2]
    big = np.asarray(Image.fromarray(small).resize((1920, 1080), Image.Resampling.BICUBIC))
    scale = np.array([1920 / width, 1080 / height])  # (2,) x, y
    big_boxes = boxes * np.tile(scale, 2)
    big_poses = np.concatenate([poses[..., :2] * scale, poses[..., 2:]], axis=-1)

    args.out.mkdir(parents=True, exist_ok=True)
    for name, frame, b, p in (
        ("overlay-320x240.png", small, boxes, poses),
        ("overlay-1920x1080.png", big, big_boxes, big_poses),
    ):
        overlay, seconds = timed_draw(frame, b, tids, p, args.repeats)
        image = Image.fromarray(overlay)
        if image.width > args.docs_width:
            image = image.resize((args.docs_width, round(image.height * args.docs_width / image.width)), Image.LANCZOS)
            image = image.quantize(256)  # the upscaled frame's noise makes a full-colour PNG ~600 KB
        image.save(args.out / name, optimize=True)
        print(f"{frame.shape[1]}x{frame.shape[0]}: {len(b)} persons, draw {seconds * 1e3:.2f} ms -> {args.out / name}")


if __name__ == "__main__":
    main()
