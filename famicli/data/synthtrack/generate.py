"""SynthTrack: a procedurally rendered dataset in the PoseTrack18 layout, generated on the spot.

Each video is a textured scene (a gradient wall and floor with clutter and grain) with 2-4 people
(:mod:`famicli.data.synthtrack.figure`) that walk, dance, wave or do jumping jacks while turning; bars and
boards cross in front of them; some frames have motion blur or camera shake; some videos have a
crowd of small unannotated people marked as an ignore region. Everything is a function of
``(seed, video index)``: the same seed gives byte-identical JSON and JPEG files.

Output (the PoseTrack18 layout, ``docs/data.md``)::

    DIR/images/<split>/<NNNNNN>_mpii_<train|test>/<frame:06d>.jpg
    DIR/annotations/<split>/<NNNNNN>_mpii_<train|test>.json
    DIR/synthtrack.json        generator record, written last: its presence marks a complete set

The folder is generated under ``.<name>.tmp-*`` beside ``DIR`` and renamed into place at the end,
so an interrupted run never leaves a half-written ``DIR``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from famicli.data.synthtrack import figure as F
from famicli.errors import ConfigError, InputError
from famicli.formats.layout import image_id
from famicli.io import dumps, short_name, usual_mode
from famicli.keypoints import JOINT_NAMES, NEVER_LABELED, SKELETON

log = logging.getLogger(__name__)

MARKER = "synthtrack.json"  # written last; a SynthTrack folder without it is incomplete


@dataclass(frozen=True)
class SynthConfig:
    """What ``famipose data synth`` generates."""

    videos: int = 20  # videos in all (train + val)
    frames: int = 40  # frames per video
    size: tuple[int, int] = (320, 240)  # frame (width, height) in pixels
    seed: int = 0  # every video is a function of (seed, video index)
    val_videos: int | None = None  # videos in the val split; None: a quarter (one when videos is 2 or 3)
    val_label_every: int = 4  # val labels frames 0, k, 2k, ... (train labels every frame)
    jpeg_quality: int = 90  # JPEG quality of the frames

    def n_val(self) -> int:
        if self.val_videos is not None:
            return self.val_videos
        return self.videos // 4 if self.videos >= 4 else min(1, self.videos - 1)

    def validate(self) -> None:
        """Raises ConfigError naming the bad value."""
        w, h = self.size
        if self.videos < 1 or self.frames < 1:
            raise ConfigError(f"videos and frames must be >= 1 (got {self.videos} videos, {self.frames} frames)")
        if w < 64 or h < 48:
            raise ConfigError(f"frame size {w}x{h} is too small; the minimum is 64x48")
        if not 0 <= self.n_val() <= self.videos:
            raise ConfigError(f"val videos {self.n_val()} must be between 0 and the {self.videos} videos")
        if self.val_label_every < 1 or not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"val_label_every {self.val_label_every} must be >= 1 and jpeg_quality in 1..100")


@dataclass
class _Scene:
    background: np.ndarray  # (H + 2M, W + 2M, 3) uint8, world coordinates = its pixel indices
    margin: int  # M: camera travel allowed in each direction
    figures: list  # FigureSpec per track
    occluders: list  # (x0, vx, y, w, h, colour, stripe colour, vertical stripes)
    camera: np.ndarray  # (T, 2) int camera offsets (x, y)
    blur: dict  # frame -> (kernel length px, angle rad)
    shake: set  # frames with camera shake
    ignore: np.ndarray | None  # (4, 2) world polygon of the crowd, or None


def generate(
    out: str | Path,
    cfg: SynthConfig = SynthConfig(),
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write a SynthTrack dataset to ``out`` and return a summary.

    Args:
        out: destination folder (must not exist, be empty, or be a SynthTrack folder with ``overwrite``).
        cfg: what to generate.
        overwrite: replace an existing SynthTrack folder.
        progress: called with (frames done, frames in all).

    Returns:
        ``{"out", "seed", "size", "videos": {"train", "val"}, "frames", "labeled_frames", "persons",
        "tracks", "occluded_frames", "blurred_frames", "shake_frames", "seconds"}``.

    Raises:
        ConfigError: bad config values. InputError: ``out`` is in the way.
    """
    cfg.validate()
    out = Path(out)
    t0 = time.perf_counter()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise InputError(f"{out}: already exists and is not empty; pass --overwrite to replace it")
        if not (out / MARKER).is_file():
            raise InputError(f"{out}: not a SynthTrack folder (no {MARKER}); refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{short_name(out.name)}.tmp-", dir=out.parent))
    usual_mode(tmp)  # it becomes ``out``: drwxr-xr-x under umask 022, not mkdtemp's drwx------
    counts = {
        "frames": 0,
        "labeled_frames": 0,
        "persons": 0,
        "tracks": 0,
        "occluded_frames": 0,
        "blurred_frames": 0,
        "shake_frames": 0,
    }
    n_train = cfg.videos - cfg.n_val()
    splits: dict[str, list[str]] = {"train": [], "val": []}
    try:
        for v in range(cfg.videos):
            split = "train" if v < n_train else "val"
            name = f"{v + 1:06d}_mpii_{'train' if split == 'train' else 'test'}"
            splits[split].append(name)
            doc = _write_video(tmp, split, name, v, cfg, counts, progress)
            (tmp / "annotations" / split).mkdir(parents=True, exist_ok=True)
            (tmp / "annotations" / split / f"{name}.json").write_text(dumps(doc) + "\n")
        from famicli import __version__

        record = {
            "format": "synthtrack",
            "famipose": __version__,
            "config": asdict(cfg),
            "splits": splits,
            "counts": counts,
        }
        (tmp / MARKER).write_text(dumps(record, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out) if any(out.iterdir()) else out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - t0
    log.info("SynthTrack: %d videos, %d frames in %.1f s -> %s", cfg.videos, counts["frames"], seconds, out)
    return {
        "out": str(out),
        "seed": cfg.seed,
        "size": list(cfg.size),
        "videos": {k: len(v) for k, v in splits.items()},
        **counts,
        "seconds": round(seconds, 3),
    }


def _write_video(root: Path, split: str, name: str, index: int, cfg: SynthConfig, counts: dict, progress) -> dict:
    """Render one video's frames to ``root`` and return its PoseTrack18 annotation document."""
    from PIL import Image, ImageDraw

    w, h = cfg.size
    rng = np.random.default_rng([cfg.seed, index, 0])
    noise_rng = np.random.default_rng([cfg.seed, index, 1])
    scene = _scene(rng, cfg)
    folder = root / "images" / split / name
    folder.mkdir(parents=True, exist_ok=True)
    seq = index + 1
    images, annotations, tracks = [], [], set()
    for t in range(cfg.frames):
        ox, oy = scene.margin + scene.camera[t]
        img = Image.fromarray(scene.background[oy : oy + h, ox : ox + w])
        mask = Image.new("L", (w, h), 0)
        drgb, dmask = ImageDraw.Draw(img), ImageDraw.Draw(mask)
        figs = [F.pose(spec, t) for spec in scene.figures]
        for k in sorted(range(len(figs)), key=lambda k: scene.figures[k].ground):  # far (higher) first
            F.draw(drgb, dmask, figs[k], k + 1, (ox, oy))
        for x0, vx, y, ow, oh, color, stripe, vertical in scene.occluders:
            x = x0 + vx * t - ox
            box = [x, y - oy, x + ow, y - oy + oh]
            drgb.rectangle(box, fill=color)
            dmask.rectangle(box, fill=255)
            for s in (0.25, 0.5, 0.75):  # stripes
                sx, sy = x + ow * s, y - oy + oh * s
                line = (sx, y - oy, sx, y - oy + oh) if vertical else (x, sy, x + ow, sy)
                drgb.line(line, fill=stripe, width=max(1, int(ow / 16)))
        frame = np.asarray(img).astype(np.int16)
        frame += noise_rng.integers(-4, 5, size=(h, w, 1), dtype=np.int16)  # sensor grain
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        if t in scene.blur:
            frame = _motion_blur(frame, *scene.blur[t])
        file_name = f"images/{split}/{name}/{t:06d}.jpg"
        Image.fromarray(frame).save(root / file_name, quality=cfg.jpeg_quality)
        labeled = split == "train" or t % cfg.val_label_every == 0
        iid = image_id(seq, t)
        entry = {
            "id": iid,
            "file_name": file_name,
            "frame_id": iid,
            "vid_id": f"{seq:06d}",
            "nframes": cfg.frames,
            "is_labeled": labeled,
        }
        if scene.ignore is not None:
            poly = np.clip(scene.ignore - (ox, oy), 0, (w - 1, h - 1))
            entry["ignore_regions_x"] = [[round(float(v), 2) for v in poly[:, 0]]]
            entry["ignore_regions_y"] = [[round(float(v), 2) for v in poly[:, 1]]]
        people = _annotate(figs, scene.figures, np.asarray(mask), (ox, oy), (w, h), iid) if labeled else []
        occluded = any(p["occluded_joints"] for p in people)
        entry["synth"] = {"occluded": occluded, "blurred": t in scene.blur, "shake": t in scene.shake}
        images.append(entry)
        annotations += people
        tracks.update(p["track_id"] for p in people)
        counts["frames"] += 1
        counts["labeled_frames"] += labeled
        counts["persons"] += len(people)
        counts["occluded_frames"] += labeled and occluded
        counts["blurred_frames"] += t in scene.blur
        counts["shake_frames"] += t in scene.shake
        if progress:
            progress(counts["frames"], cfg.videos * cfg.frames)
    counts["tracks"] += len(tracks)
    category = {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(JOINT_NAMES),
        "skeleton": [list(limb) for limb in SKELETON],
    }
    return {"images": images, "annotations": annotations, "categories": [category]}


def _annotate(figs, specs, mask: np.ndarray, origin, size, iid: int) -> list[dict]:
    """PoseTrack18 annotations of the people in one frame (joints outside the frame are unlabeled)."""
    w, h = size
    people = []
    for k, (fig, spec) in enumerate(zip(figs, specs, strict=True)):
        xy = fig.joints - np.asarray(origin, dtype=float)  # (17, 2) image coordinates
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
        inside[list(NEVER_LABELED)] = False
        if inside.sum() < 2:
            continue
        kp = np.zeros((17, 3))
        kp[inside, :2], kp[inside, 2] = np.round(xy[inside], 2), 1.0
        px = np.round(xy).astype(int)
        hidden = [int(j) for j in np.flatnonzero(inside) if mask[px[j, 1], px[j, 0]] != k + 1]
        x1, y1 = np.clip(fig.extent[:2] - origin, 0, (w - 1, h - 1))
        x2, y2 = np.clip(fig.extent[2:] - origin, 0, (w - 1, h - 1))
        head = fig.head_box - np.array([*origin, 0, 0], dtype=float)
        people.append(
            {
                "id": iid * 100 + spec.track_id,
                "image_id": iid,
                "track_id": spec.track_id,
                "person_id": spec.track_id,
                "category_id": 1,
                "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],  # (17, 3) -> (51,)
                "bbox": [round(float(v), 2) for v in (x1, y1, x2 - x1, y2 - y1)],
                "bbox_head": [round(float(v), 2) for v in head],
                "occluded_joints": hidden,
            }
        )
    return people


def _scene(rng: np.random.Generator, cfg: SynthConfig) -> _Scene:
    """Draw one video's background, people, occluders, camera path, blur and shake frames."""
    w, h = cfg.size
    T = cfg.frames
    m = int(0.12 * w)
    horizon = float(rng.uniform(0.3, 0.5)) * h
    # the texture has its own stream, so the same seed gives the same scene at any frame size
    texture_rng = np.random.default_rng(rng.integers(2**63))
    background = _background(texture_rng, w + 2 * m, h + 2 * m, horizon + m)
    ignore = _crowd(rng, background, w, h, horizon, m) if rng.random() < 0.35 else None
    figures = [F.random_figure(rng, k + 1, (w, h), horizon, m) for k in range(int(rng.integers(2, 5)))]
    occluders = []
    for _ in range(int(rng.integers(1, 3)) if rng.random() < 0.7 else 0):
        pole = rng.random() < 0.5
        ow = float(rng.uniform(0.05, 0.1) if pole else rng.uniform(0.18, 0.35)) * w
        oh = float(h + 2 * m if pole else rng.uniform(0.2, 0.4) * h)
        y = 0.0 if pole else float(m + rng.uniform(0.5, 0.85) * h - oh / 2)
        d = 1 if rng.random() < 0.5 else -1
        vx = d * (w + ow) / (T * rng.uniform(0.6, 1.3))
        x0 = m - ow - rng.uniform(0, 0.2) * w if d > 0 else m + w + rng.uniform(0, 0.2) * w
        color = tuple(int(c) for c in rng.integers(30, 230, 3))
        stripe = tuple(int(c * 0.6) for c in color)
        occluders.append((float(x0), float(vx), y, ow, oh, color, stripe, bool(rng.random() < 0.5)))
    pan = rng.uniform(-1, 1, 2) * [1.0, 0.3] if rng.random() < 0.3 else np.zeros(2)
    camera = np.round(np.arange(T)[:, None] * pan).astype(int)  # (T, 2)
    shake: set[int] = set()
    if rng.random() < 0.4:
        shake = _episodes(rng, T)
        amp = int(rng.integers(3, 9))
        for t in sorted(shake):
            camera[t] += rng.integers(-amp, amp + 1, 2)
    camera = np.clip(camera, -m, m)
    blur = {}
    if rng.random() < 0.4:
        for t in sorted(_episodes(rng, T)):
            blur[t] = (int(rng.integers(5, 14)), float(rng.uniform(0, math.pi)))
    return _Scene(background, m, figures, occluders, camera, blur, shake, ignore)


def _episodes(rng: np.random.Generator, T: int) -> set[int]:
    """One or two runs of 2-6 consecutive frames."""
    frames: set[int] = set()
    for _ in range(int(rng.integers(1, 3))):
        length = int(rng.integers(2, 7))
        start = int(rng.integers(0, max(1, T - length + 1)))
        frames.update(range(start, min(T, start + length)))
    return frames


def _background(rng: np.random.Generator, w: int, h: int, horizon: float) -> np.ndarray:
    """A wall/floor gradient with low-frequency colour noise, clutter shapes and grain: (h, w, 3) uint8."""
    from PIL import Image, ImageDraw

    ys = np.arange(h, dtype=np.float32)[:, None, None]  # (h, 1, 1)
    c = rng.uniform(40, 220, (4, 3)).astype(np.float32)
    wall = c[0] + (c[1] - c[0]) * np.clip(ys / max(horizon, 1), 0, 1)
    floor = c[2] + (c[3] - c[2]) * np.clip((ys - horizon) / max(h - horizon, 1), 0, 1)
    img = np.where(ys < horizon, wall, floor) * np.ones((1, w, 1), np.float32)  # (h, 1, 3) -> (h, w, 3)
    low = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img += (np.asarray(Image.fromarray(low).resize((w, h), Image.Resampling.BICUBIC), np.float32) - 128) * 0.25
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(6, 16))):  # furniture, windows, posters
        x, y = rng.uniform(0, w), rng.uniform(0, horizon + 0.2 * (h - horizon))
        bw, bh = rng.uniform(0.03, 0.25) * w, rng.uniform(0.05, 0.4) * h
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.rectangle if rng.random() < 0.7 else draw.ellipse)([x, y, x + bw, y + bh], fill=fill)
    for _ in range(int(rng.integers(2, 7))):  # floor lines
        y = rng.uniform(horizon, h)
        draw.line(
            [(0, y), (w, y + rng.uniform(-0.1, 0.1) * h)],
            fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
            width=int(rng.integers(1, 4)),
        )
    grain = rng.integers(-10, 11, (h, w, 1), dtype=np.int16)
    return np.clip(np.asarray(pil).astype(np.int16) + grain, 0, 255).astype(np.uint8)


def _crowd(rng: np.random.Generator, background: np.ndarray, w: int, h: int, horizon: float, m: int) -> np.ndarray:
    """Draw 3-6 small static people into ``background``; return their (4, 2) world box polygon."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(background)
    draw = ImageDraw.Draw(pil)
    sink = ImageDraw.Draw(Image.new("L", pil.size))
    x_left = m + float(rng.uniform(0, 0.65)) * w
    extents = []
    for k in range(int(rng.integers(3, 7))):
        spec = F.random_figure(rng, 0, (w, h), horizon, m)
        small = float(rng.uniform(0.14, 0.22)) * h
        spec = F.FigureSpec(
            **{
                **asdict(spec),
                "height": small,
                "ground": m + horizon + 0.4 * small,
                "x0": x_left + k * rng.uniform(0.04, 0.07) * w,
                "vx": 0.0,
            }
        )
        fig = F.pose(spec, 0)
        F.draw(draw, sink, fig, 0, (0, 0))
        extents.append(fig.extent)
    background[:] = np.asarray(pil)
    e = np.array(extents)
    x1, y1, x2, y2 = e[:, 0].min() - 3, e[:, 1].min() - 3, e[:, 2].max() + 3, e[:, 3].max() + 3
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])


def _motion_blur(img: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Average of ``length`` copies shifted along ``angle`` (a linear motion-blur kernel centred on 0)."""
    hgt, wid = img.shape[:2]
    padded = np.pad(img, ((length, length), (length, length), (0, 0)), mode="edge").astype(np.uint16)
    acc = np.zeros(img.shape, np.uint16)
    for k in range(length):
        d = k - (length - 1) / 2
        dx, dy = int(round(d * math.cos(angle))), int(round(d * math.sin(angle)))
        acc += padded[length + dy : length + dy + hgt, length + dx : length + dx + wid]
    return ((acc + length // 2) // length).astype(np.uint8)
