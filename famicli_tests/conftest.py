"""Shared fixtures: where the reference data lives, and small models built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# CI clones the repo with shared/ beside it; FAMIPOSE_SHARED points elsewhere if needed.
SHARED = Path(os.environ.get("FAMIPOSE_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path under the reference-data folder, or skip the test with the reason if it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data not found at {path} (set FAMIPOSE_SHARED to the shared/ folder)")
    return path


def encode_sequence(root: Path, split: str, seq: str, video: Path, fps: float = 25) -> Path:
    """Encode the frames of a PoseTrack-layout sequence (``root/images/<split>/<seq>/*.jpg``) as ``video``."""
    from famicli.data.posetrack import read_image
    from famicli.data.video import VideoWriter

    frames = [read_image(f) for f in sorted((root / "images" / split / seq).glob("*.jpg"))]
    with VideoWriter(video, fps, (frames[0].shape[1], frames[0].shape[0])) as writer:
        for frame in frames:
            writer.write(frame)
    return video


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)
