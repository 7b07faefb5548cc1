"""famicli.data.video: decoding containers and image folders, rotation, encoding, and bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest

from famicli.data.video import VideoWriter, open_video
from famicli.errors import InputError


def _clip(n: int = 6, size=(64, 48)) -> list[np.ndarray]:
    """Frames whose brightness encodes their index, with a white marker in the top-left corner."""
    w, h = size
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), 20 + 30 * i, np.uint8)
        f[:8, :8] = 255
        frames.append(f)
    return frames


def _write(path, frames, fps=25.0, **kw):
    with VideoWriter(path, fps, (frames[0].shape[1], frames[0].shape[0]), **kw) as w:
        for f in frames:
            w.write(f)
    return w


@pytest.mark.parametrize("suffix,codec", [(".mp4", "h264"), (".avi", "mjpeg"), (".webm", "vp9"), (".mov", "h264")])
def test_round_trip_each_container(tmp_path, suffix, codec):
    frames = _clip()
    path = tmp_path / f"clip{suffix}"
    _write(path, frames, fps=30000 / 1001)
    with open_video(path) as video:
        info = video.info
        decoded = list(video.frames())
    assert (info.frames, info.width, info.height, info.rotation, info.codec) == (6, 64, 48, 0, codec)
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert len(decoded) == 6 and all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in decoded)
    # frames come out in order: the brightness of a flat region encodes the index
    means = [float(f[24:, 24:].mean()) for f in decoded]
    assert np.allclose(means, [20 + 30 * i for i in range(6)], atol=6)


def test_rotation_metadata_is_applied(tmp_path):
    import av

    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(90)  # counter-clockwise, as phones record portrait video
        for f in _clip(3):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with open_video(path) as video:
        frame = next(video.frames())
        assert (video.info.rotation, video.info.width, video.info.height) == (90, 48, 64)
    # rotated 90 degrees counter-clockwise: the top-left marker is now bottom-left
    assert frame.shape == (64, 48, 3)
    assert frame[-8:, :8].mean() > 200 and frame[:8, :8].mean() < 100


def test_image_folder_natural_order(tmp_path):
    from PIL import Image

    for name in ("2.png", "10.png"):  # natural order: 2 before 10 (these two are overwritten below)
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / name)
    with open_video(tmp_path) as video:
        assert [p.name for p in video.files] == ["2.png", "10.png"]
    (tmp_path / "10.png").unlink()
    for i, f in enumerate(_clip(8)):
        Image.fromarray(f).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    with open_video(tmp_path, fps=12.5) as video:
        assert (video.info.kind, video.info.frames, video.info.fps) == ("images", 8, 12.5)
        means = [float(f[24:, 24:].mean()) for f in video.frames()]
    assert means == [20 + 30 * i for i in range(8)]


def test_frames_are_streamed_one_at_a_time(tmp_path):
    _write(tmp_path / "c.mp4", _clip(6))
    with open_video(tmp_path / "c.mp4") as video:
        it = video.frames()
        first = next(it)
        assert first.shape == (48, 64, 3)  # a generator: nothing else decoded yet
        assert sum(1 for _ in it) == 5


def test_writer_pads_odd_sizes(tmp_path):
    frames = [np.zeros((47, 63, 3), np.uint8)] * 3
    w = _write(tmp_path / "odd.mp4", frames)
    assert (w.size, w.frames, w.codec) == ((64, 48), 3, "libx264")
    with open_video(tmp_path / "odd.mp4") as video:
        assert (video.info.width, video.info.height, video.info.frames) == (64, 48, 3)


def test_writer_falls_back_when_encoder_missing(tmp_path, monkeypatch, caplog):
    import av

    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"libx264", "h264", "libopenh264"})
    w = _write(tmp_path / "fallback.mp4", _clip(3))
    assert w.codec == "mpeg4"
    assert "libx264 is not available" in caplog.text
    with open_video(tmp_path / "fallback.mp4") as video:
        assert (video.info.codec, video.info.frames) == ("mpeg4", 3)


def _truncated(tmp_path, faststart: bool):
    import av

    path = tmp_path / "full.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(20):
            for p in s.encode(av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    data = path.read_bytes()
    out = tmp_path / "truncated.mp4"
    out.write_bytes(data[: len(data) // 2])
    return out


def test_bad_inputs(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 20)
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "readme.txt").write_text("no frames here")
    cases = {
        tmp_path / "empty.mp4": "empty file (0 bytes)",
        tmp_path / "text.mp4": "cannot read video",
        _truncated(tmp_path, faststart=False): "cannot read video",
        tmp_path / "nothing": "no images in this folder",
        tmp_path / "missing.mp4": "no such file or folder",
    }
    for path, message in cases.items():
        with pytest.raises(InputError, match=re.escape(message)) as err:
            open_video(path)
        assert str(path) in str(err.value)


def test_truncated_stream_with_index_up_front(tmp_path):
    """A faststart mp4 cut in half opens (its index is complete) but ends early: an error, not a short video."""
    path = _truncated(tmp_path, faststart=True)
    with open_video(path) as video:
        assert video.info.frames == 20
        with pytest.raises(InputError, match=r"ends after \d+ of 20 frames"):
            list(video.frames())


def test_image_folder_with_a_different_frame_size(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "000000.jpg")
    Image.fromarray(np.zeros((40, 64, 3), np.uint8)).save(tmp_path / "000001.jpg")
    with open_video(tmp_path) as video, pytest.raises(InputError, match="000001.jpg: image size 64x40 differs"):
        list(video.frames())
