"""Shared fixtures: where the reference data lives; one torch thread for the session (``one_thread``); and
what the modules share, built once per session: one SynthTrack set (``synthtrack``) and one randomly
initialized ``tiny`` checkpoint (``tiny_checkpoint``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op torch thread for the session, restored afterwards. The tests' tensors are small, and a
    pool of threads larger than the free cores spins. Measured on 2 cores: the default suite idle takes
    84 s wall and 80 CPU-s with one thread, 75 s and 91 CPU-s with two; test_train, test_parity and
    test_viz beside two busy processes take 59 s and 37 CPU-s with one thread, 102 s and 87 CPU-s with two
    (one epoch of test_train's tiny model at load 5: 5 s with one thread, 50 s with two)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synthtrack(tmp_path_factory) -> Iterator[Path]:
    """One SynthTrack set for the whole session: 3 videos of 5 frames at 160x120, seed 1. ``train`` holds
    ``000001_mpii_train`` (every frame labeled, 20 persons); ``val`` holds ``000002_mpii_test`` and
    ``000003_mpii_test`` (frames 0 and 4 labeled, 4 persons each). Tests read it; one that changes files
    copies it first (checked when the session ends). Modules that need more frames or training samples
    generate their own."""
    from famicli.data.synthtrack.generate import SynthConfig, generate

    root = tmp_path_factory.mktemp("shared") / "synthtrack"
    generate(root, SynthConfig(videos=3, frames=5, size=(160, 120), seed=1, val_videos=2))
    before = _contents(root)
    yield root
    assert _contents(root) == before, f"a test changed the shared SynthTrack set at {root}"


def _contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A ``tiny`` FAMI-Pose checkpoint with random weights (``torch.manual_seed(0)``), saved once; building it
    takes a fraction of a second, no training. Tests load it; one that needs other weights saves its own."""
    import torch

    import famicli

    with torch.random.fork_rng():  # the session's global RNG state is left as it was
        torch.manual_seed(0)
        model = famicli.build_model("tiny")
    return famicli.save_checkpoint(model, tmp_path_factory.mktemp("shared") / "tiny.pt")


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
