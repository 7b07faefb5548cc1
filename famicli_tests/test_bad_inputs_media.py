"""Bad media reaching the library and the CLI: cut videos, the fp16 matmul probe on CPU, viz frame range.

Every case ends in one ``famicli.errors`` exception naming the input (``Error: ...``, exit 1 in the CLI),
never a traceback, and nothing half-written in ``--out``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from famicli.cli.app import app
from famicli.config import DataConfig
from famicli.data.clip import ClipSource, load_clip
from famicli.data.video import open_video
from famicli.errors import ConfigError, InputError
from famicli.profiling import profiler
from famicli.profiling.profiler import PROBE_MAX_N, matmul_peak, probe_size

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo.mp4"
runner = CliRunner()


def _faststart_copy(src: Path, dst: Path) -> Path:
    """``src`` remuxed with its index (moov) before the frames, as web-ready mp4s are written."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is None:  # the demuxer's final flush packet
                continue
            packet.stream = copy
            out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def cut(tmp_path_factory) -> dict[str, Path]:
    """The demo clip (75 frames) cut at several byte offsets, random bytes and an empty file."""
    base = tmp_path_factory.mktemp("cut")
    fs = _faststart_copy(DEMO, base / "faststart.mp4").read_bytes()
    plain = DEMO.read_bytes()
    mdat = fs.index(b"mdat") + 4
    cases = {
        "header_only.mp4": fs[:mdat],  # the complete index, no frame data
        "header_and_a_bit.mp4": fs[: mdat + 1200],  # the first frame's data cut
        "half.mp4": fs[: len(fs) // 2],
        "missing_last_bytes.mp4": fs[:-100],
        "plain_half.mp4": plain[: len(plain) // 2],  # index at the end: cut away
        "random.mp4": os.urandom(20_000),
        "empty.mp4": b"",
    }
    for name, data in cases.items():
        (base / name).write_bytes(data)
    return {name: base / name for name in cases}


MESSAGES = {
    "header_only.mp4": "cannot decode video (frame 0",
    "header_and_a_bit.mp4": "cannot decode video (frame 0",
    "half.mp4": "the stream ends after",
    "missing_last_bytes.mp4": "the stream ends after",
    "plain_half.mp4": "cannot read video",
    "random.mp4": "cannot read video",
    "empty.mp4": "empty file (0 bytes)",
}


@pytest.mark.parametrize("name", list(MESSAGES))
def test_open_video_on_a_cut_file(cut, name):
    path = cut[name]
    with pytest.raises(InputError) as err:
        with open_video(path) as video:
            for _ in video.frames():
                pass
    message = str(err.value)
    assert message.startswith(f"{path}: ") and MESSAGES[name] in message, message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["header_only.mp4", "half.mp4", "missing_last_bytes.mp4", "random.mp4", "empty.mp4"])
def test_predict_on_a_cut_file(cut, name, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    args = ["predict", str(cut[name]), "--weights", str(tiny_checkpoint), "--device", "cpu", "--out", str(out)]
    result = runner.invoke(app, [*args, "--detector", "full-frame", "--batch-size", "8"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {cut[name]}: "), result.stderr
    assert MESSAGES[name] in lines[0] and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())  # no partial output files


def test_matmul_probe_fp16_on_cpu_is_bounded():
    """fp16 on a CPU without fp16 units is ~100x slower than fp32: the probe picks a size whose single
    call is short (Ctrl-C is honoured between calls) instead of a fixed 2048^3 product."""
    result = matmul_peak(torch.device("cpu"), torch.float16, 0.05)
    n = result["n"]
    assert 128 <= n <= PROBE_MAX_N["cpu"] and n & (n - 1) == 0
    assert set(result["calls"]) == {"mm", "conv1x1"} and all(c >= 1 for c in result["calls"].values())
    assert result["peak_gflop_s"] == max(result["mm_gflop_s"], result["conv1x1_gflop_s"]) > 0


@pytest.mark.parametrize("gflop_s,expected", [(1.0, 256), (0.01, 128), (1e6, 2048)])
def test_probe_size_keeps_one_call_short(gflop_s, expected):
    """With a cost model of ``gflop_s``: the chosen size's call stays under the limit, never beyond 2048."""
    asked = []

    def seconds(n: int) -> float:
        asked.append(n)
        return 2 * n**3 / gflop_s / 1e9

    n = probe_size(seconds, PROBE_MAX_N["cpu"], max_call_s=0.1)
    assert n == expected and max(asked) <= n
    assert seconds(n) <= 0.1 or n == 128  # the smallest size is always allowed


def test_profile_refuses_a_dtype_without_fast_kernels(monkeypatch):
    def fake(device, dtype, seconds):
        peak = 2.0 if dtype == torch.float16 else 300.0
        return {"n": 256, "calls": {}, "mm_gflop_s": peak, "conv1x1_gflop_s": peak, "peak_gflop_s": peak}

    monkeypatch.setattr(profiler, "matmul_peak", fake)
    with pytest.raises(ConfigError, match=r"dtype 'fp16' is 150x slower than fp32 on this CPU .*use fp32"):
        profiler.profile_model(variant="tiny", device="cpu", dtypes=("fp16",), iters=1, warmup=0)


@pytest.mark.parametrize("frame", [-1, 75, 1000])
def test_clip_frame_out_of_range_names_the_true_count(frame):
    source = ClipSource(frame=frame, video=DEMO)
    with pytest.raises(InputError) as err:
        load_clip(source, DataConfig(), (256, 192), (64, 48))
    assert str(err.value) == f"frame {frame} is out of range: {DEMO} has 75 frames (0..74)"


def test_clip_last_frame_is_in_range():
    clip = load_clip(ClipSource(frame=74, video=DEMO), DataConfig(), (64, 48), (16, 12))
    assert clip.positions[0] == 74 and clip.crops.shape[0] == 5
