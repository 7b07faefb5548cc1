"""The bundled demo (``assets/``): tiny weights trained on SynthTrack, a SynthTrack clip and its boxes.

``famipose predict``, ``viz`` and ``eval --dataset synthtrack`` fall back on these when no weights
(or clip) are given and they are installed. :data:`SYNTH_RECIPE` is the SynthTrack set of the
training recipe (docs/training.md), which ``eval --dataset synthtrack`` generates (deterministically,
in seconds) when no dataset is at its root.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from famicli.errors import ConfigError

WEIGHTS_NAME = "demo_tiny.pt"  # tiny variant, weights only
VIDEO_NAME = "demo.mp4"  # SynthTrack clip with occluders and blur
BOXES_NAME = "demo_boxes.json"  # its person boxes (PoseTrack18 file with track ids)
# The SynthTrack set of the demo weights: famipose data synth --videos 160 --frames 12 --seed 1
SYNTH_RECIPE = {"videos": 160, "frames": 12, "seed": 1}
# The demo clip: one SynthTrack video (4 people, 2 occluders, 5 motion-blurred frames), 3 s at 25 fps
CLIP_RECIPE = {"seed": 4, "frames": 75, "fps": 25}


def _asset_dirs() -> tuple[Path, ...]:
    """The package ``famicli.assets`` (the checkout's ``assets/`` in an editable install, its copy in a wheel
    install), then the checkout's ``assets/`` for a source tree used without installing it."""
    folders = []
    try:
        package = importlib.resources.files("famicli.assets")
    except ModuleNotFoundError:  # a checkout on sys.path, or an editable install made before assets/ was a package
        package = None
    if isinstance(package, Path):  # a folder on disk (not inside a zip file)
        folders.append(package.resolve())
    checkout = Path(__file__).resolve().parents[3]  # famicli/data/synthtrack/demo.py -> the source tree
    if (checkout / "pyproject.toml").is_file():
        folders.append(checkout / "assets")
    return tuple(dict.fromkeys(folders))


# Looked up in order (see _asset_dirs)
ASSET_DIRS = _asset_dirs()


def asset(name: str) -> Path | None:
    """The bundled file ``name``, or None when it is not installed."""
    for folder in ASSET_DIRS:
        if (folder / name).is_file():
            return folder / name
    return None


def default_weights() -> Path:
    """The bundled demo weights, or a ConfigError saying that --weights is needed."""
    path = asset(WEIGHTS_NAME)
    if path is None:
        raise ConfigError(
            f"no --weights given and no bundled demo weights (assets/{WEIGHTS_NAME}) are installed; "
            "pass --weights CKPT, e.g. a checkpoint written by famipose train"
        )
    return path


def default_video() -> Path | None:
    """The bundled demo clip, if installed."""
    return asset(VIDEO_NAME)


def sidecar_boxes(video: Path) -> Path | None:
    """``<stem>_boxes.json`` next to ``video`` (how the demo clip carries its boxes), if present."""
    video = Path(video)
    candidate = video.with_name(f"{video.stem}_boxes.json") if video.is_file() else None
    return candidate if candidate is not None and candidate.is_file() else None


def synthtrack_like(path: Path) -> bool:
    """Is ``path`` the bundled clip or inside a SynthTrack folder (one holding ``synthtrack.json``)?"""
    path = Path(path).resolve()
    demo = default_video()
    if demo is not None and path == demo.resolve():
        return True
    return any((parent / "synthtrack.json").is_file() for parent in path.parents)


def note_if_not_synthtrack(path: Path) -> str | None:
    """The one-line note printed when the demo weights meet a video that is not SynthTrack."""
    if synthtrack_like(path):
        return None
    return (
        f"Note: the bundled demo weights were trained on synthetic SynthTrack figures and will not find "
        f"real people in {path}; pass --weights CKPT (famipose train, or an official FAMI-Pose "
        "checkpoint: docs/model.md)"
    )


def recipe_text() -> str:
    """The ``famipose data synth`` options of :data:`SYNTH_RECIPE`."""
    return " ".join(f"--{k} {v}" for k, v in SYNTH_RECIPE.items())


def needs_synthtrack(root: Path) -> bool:
    """No dataset at ``root`` (neither a SynthTrack marker nor an annotations folder)."""
    root = Path(root)
    return not (root / "synthtrack.json").is_file() and not (root / "annotations").is_dir()


def generate_synthtrack(root: Path) -> None:
    """Generate the recipe's SynthTrack set at ``root`` (see :func:`needs_synthtrack`)."""
    from famicli.data.synthtrack.generate import SynthConfig, generate

    generate(Path(root), SynthConfig(**SYNTH_RECIPE))


def write_demo_clip(
    folder: Path,
    seed: int = CLIP_RECIPE["seed"],
    frames: int = CLIP_RECIPE["frames"],
    fps: float = CLIP_RECIPE["fps"],
    size: tuple[int, int] = (320, 240),
) -> dict:
    """Write the demo clip ``folder/demo.mp4`` and its boxes ``folder/demo_boxes.json``.

    The clip is the single video of ``famipose data synth --videos 1 --frames <frames> --seed <seed>``
    (a function of the seed and size, see :mod:`famicli.data.synthtrack.generate`), encoded at ``fps``; the boxes
    are its annotated boxes with score 1 and their track ids, keyed by 0-based ``frame_index``
    (the format of :class:`famicli.inference.detect.BoxFile`).

    Returns:
        ``{"video", "boxes", "frames", "persons", "blurred_frames", "occluded_frames"}``.
    """
    import json
    import tempfile

    import numpy as np
    from PIL import Image

    from famicli.data.synthtrack.generate import SynthConfig, generate
    from famicli.data.video import VideoWriter
    from famicli.io import atomic_path, dumps

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".demo-", dir=folder) as tmp:
        summary = generate(Path(tmp) / "synth", SynthConfig(videos=1, frames=frames, seed=seed, size=size))
        ann_file = next((Path(tmp) / "synth" / "annotations").glob("*/*.json"))
        doc = json.loads(ann_file.read_text())
        images = sorted(doc["images"], key=lambda im: im["file_name"])
        position = {im["id"]: i for i, im in enumerate(images)}
        boxes = [
            {
                "frame_index": position[a["image_id"]],
                "bbox": a["bbox"],
                "score": 1.0,
                "track_id": a["track_id"],
                "category_id": 1,
            }
            for a in doc["annotations"]
        ]
        boxes.sort(key=lambda b: (b["frame_index"], b["track_id"]))
        first = np.asarray(Image.open(Path(tmp) / "synth" / images[0]["file_name"]).convert("RGB"))
        video = folder / VIDEO_NAME
        with (
            atomic_path(video) as part,
            VideoWriter(part, fps, (first.shape[1], first.shape[0]), container_format="mp4") as writer,
        ):
            for im in images:
                writer.write(np.asarray(Image.open(Path(tmp) / "synth" / im["file_name"]).convert("RGB")))
        with atomic_path(folder / BOXES_NAME) as part:
            Path(part).write_text(dumps(boxes) + "\n")
    return {
        "video": str(video),
        "boxes": str(folder / BOXES_NAME),
        "frames": frames,
        "persons": len(boxes),
        "blurred_frames": summary["blurred_frames"],
        "occluded_frames": summary["occluded_frames"],
    }
