"""The bundled demo (``assets/``): tiny weights trained on SynthTrack, a SynthTrack clip and its boxes.

``famipose predict``, ``viz`` and ``eval --dataset synthtrack`` fall back on these when no weights
(or clip) are given and they are installed. :data:`SYNTH_RECIPE` is the SynthTrack set of the
training recipe (docs/training.md), which ``eval --dataset synthtrack`` generates (deterministically,
in seconds) when no dataset is at its root.
"""

from __future__ import annotations

from pathlib import Path

from famicli.errors import ConfigError

WEIGHTS_NAME = "demo_tiny.pt"  # tiny variant, weights only
VIDEO_NAME = "demo.mp4"  # SynthTrack clip with occluders and blur
BOXES_NAME = "demo_boxes.json"  # its person boxes (PoseTrack18 file with track ids)
# The SynthTrack set of the demo weights: famipose data synth --videos 160 --frames 12 --seed 1
SYNTH_RECIPE = {"videos": 160, "frames": 12, "seed": 1}
# Looked up in order: installed beside the package, then the source checkout's assets/
ASSET_DIRS = (Path(__file__).resolve().parent / "assets", Path(__file__).resolve().parents[1] / "assets")


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
        raise ConfigError(f"no --weights given and no bundled demo weights (assets/{WEIGHTS_NAME}) are installed; "
                          "pass --weights CKPT, e.g. a checkpoint written by famipose train")  # fmt: skip
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
    return (f"Note: the bundled demo weights were trained on synthetic SynthTrack figures and will not find "
            f"real people in {path}; pass --weights CKPT (famipose train, or an official FAMI-Pose "
            "checkpoint: docs/model.md)")  # fmt: skip


def recipe_text() -> str:
    """The ``famipose data synth`` options of :data:`SYNTH_RECIPE`."""
    return " ".join(f"--{k} {v}" for k, v in SYNTH_RECIPE.items())


def needs_synthtrack(root: Path) -> bool:
    """No dataset at ``root`` (neither a SynthTrack marker nor an annotations folder)."""
    root = Path(root)
    return not (root / "synthtrack.json").is_file() and not (root / "annotations").is_dir()


def generate_synthtrack(root: Path) -> None:
    """Generate the recipe's SynthTrack set at ``root`` (see :func:`needs_synthtrack`)."""
    from famicli.data.synth import SynthConfig, generate

    generate(Path(root), SynthConfig(**SYNTH_RECIPE))
