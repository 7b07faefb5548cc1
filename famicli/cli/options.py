"""The options several commands take, spelled once; the choices they offer; the default dataset root.

One concept has one spelling in every command (``famicli_tests/test_cli_options.py`` reads the options
of every command and checks it): ``-w/--weights``, ``--variant``, ``--device``, ``--dtype``,
``--batch-size``, ``--dataset`` (a benchmark name), ``--root`` (its folder), ``-o/--out``, ``--seed``,
``--json``, ``-q/--quiet``, and the model options ``predict`` and ``eval --weights`` share (``--boxes``,
``--mode``, ``--chunk``, ...). Each function here returns the ``typer.Option`` of one concept, used as
``Annotated[type, options.weights("what this command does with it")]``; the help has a default where it
reads the same everywhere, and keywords (``rich_help_panel``, ``exists``, ...) pass through.

Boolean options are declared with :func:`flag`: Typer's rich help would show ``--json <bool>``, as if
the flag took a value. Choices are ``str`` enums, so a bad value is Typer's usage error (exit 2). A number
out of its range, NaN or infinity is refused by :func:`number` with :class:`OutOfRange`, which the CLI's
guard reports as one ``Error:`` line, exit 1, like every other bad value (``docs/errors.md``).
Nothing here imports torch: ``famipose --help`` imports this module.
"""

from __future__ import annotations

import math
import os
from enum import Enum
from pathlib import Path

import typer
from typer.core import TyperCommand, TyperGroup


class Dataset(str, Enum):
    """``eval --dataset``: the benchmark, hence the scoring rules."""

    posetrack18 = "posetrack18"
    posetrack17 = "posetrack17"
    jhmdb = "jhmdb"
    synthtrack = "synthtrack"  # a SynthTrack folder, scored as PoseTrack18


class TrackingDataset(str, Enum):
    """``train --dataset``, ``viz --dataset``: the benchmarks in the PoseTrack layout (videos, boxes, tracks)."""

    posetrack18 = "posetrack18"
    posetrack17 = "posetrack17"
    synthtrack = "synthtrack"


class Variant(str, Enum):
    """The architecture presets of :data:`famicli.config.VARIANTS`."""

    w48 = "w48"
    w32 = "w32"
    tiny = "tiny"


class Dtype(str, Enum):
    """:data:`famicli.runtime.DTYPES`: fp32, or bf16 / fp16 under autocast."""

    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Mode(str, Enum):
    """:data:`famicli.inference.predictor.MODES`."""

    exact = "exact"
    fast = "fast"


class Heads(str, Enum):
    """:data:`famicli.inference.predictor.HEADS`."""

    fami = "fami"
    backbone = "backbone"


class Schema(str, Enum):
    """:data:`famicli.keypoints.SCHEMAS`."""

    posetrack = "posetrack"
    coco = "coco"


class Share(str, Enum):
    """:data:`famicli.inference.cached.SHARES`."""

    own = "own"
    union = "union"


def default_root(dataset: str) -> Path:
    """``$FAMIPOSE_DATA/<dataset>`` if FAMIPOSE_DATA is set, else ``./data/<dataset>``."""
    base = os.environ.get("FAMIPOSE_DATA")
    return Path(base) / dataset if base else Path("data") / dataset


class OutOfRange(typer.BadParameter):
    """A numeric option's value is out of its range, NaN or infinite: one ``Error:`` line, exit 1."""


def number(low: float | None = None, high: float | None = None, *, above: bool = False):
    """A ``callback`` refusing a number outside [low, high] (``above``: strictly greater than ``low``), NaN
    and infinity (Typer's ``min``/``max`` let NaN through, and report a usage box, exit 2) with
    :class:`OutOfRange`. None passes. Every numeric option with a range uses it, not ``min=``."""

    def check(value: float | None) -> float | None:
        if value is None:
            return value
        if not math.isfinite(value):
            raise OutOfRange(f"{value} is not a finite number")
        if low is not None and (value <= low if above else value < low):
            raise OutOfRange(f"{value} must be {'>' if above else '>='} {low:g}")
        if high is not None and value > high:
            raise OutOfRange(f"{value} must be <= {high:g}")
        return value

    return check


def frame_offsets(text: str | None) -> str | None:
    """``--support-offsets``: comma-separated non-zero, distinct frame offsets (``-2,-1,1,2``), else a
    usage error. Kept as text; :func:`parse_offsets` makes the tuple."""
    if text is None:
        return None
    try:
        values = parse_offsets(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected comma-separated frame offsets, e.g. -2,-1,1,2") from None
    if not values or 0 in values or len(set(values)) != len(values):
        raise OutOfRange(f"{text!r}: offsets must be distinct and non-zero (0 is the key frame)")
    return text


def parse_offsets(text: str) -> tuple[int, ...]:
    """``"-2,-1,1,2"`` -> ``(-2, -1, 1, 2)``."""
    return tuple(int(part) for part in text.split(",") if part.strip())


def flag(*decls: str, help: str, **extra):
    """A boolean option shown as a flag in help (``--json``, ``--flip/--no-flip``), not ``--json <bool>``."""
    return typer.Option(*decls, help=help, metavar="", **extra)


class _FlagHelp:
    """``--help`` shown as a flag too (Typer's rich help prints ``--help <bool>``)."""

    def get_help_option(self, ctx):  # noqa: D102 - click API
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class Command(_FlagHelp, TyperCommand):
    """The class of every famipose command (``app.command(name, cls=Command)``)."""


class Group(_FlagHelp, TyperGroup):
    """The class of every famipose command group (``typer.Typer(cls=Group)``)."""


# ---------------------------------------------------------------------------------------- shared options
def weights(help: str, **extra):
    """``-w/--weights CKPT``: a famipose, official FAMI-Pose, DCPose or HRNet checkpoint."""
    return typer.Option("--weights", "-w", help=help, **extra)


def variant(help: str = "Architecture (w48, w32, tiny), for checkpoints that do not record it.", **extra):
    return typer.Option("--variant", help=help, **extra)


def device(help: str = "Where the model runs: auto, cpu, cuda or cuda:N.", **extra):
    return typer.Option("--device", help=help, **extra)


def dtype(help: str = "fp32, or bf16/fp16 autocast (not exact; docs/speed.md).", **extra):
    return typer.Option("--dtype", help=help, **extra)


def batch_size(help: str = "Persons per forward pass.", **extra):
    return typer.Option("--batch-size", help=help, **{"callback": number(1), **extra})


def dataset(help: str = "Benchmark name (sets the default --root).", **extra):
    return typer.Option("--dataset", help=help, **extra)


def root(help: str = "Dataset folder (default: $FAMIPOSE_DATA/<dataset>, else ./data/<dataset>).", **extra):
    return typer.Option("--root", help=help, **extra)


def out(help: str, **extra):
    """``-o/--out``: the help says what the command writes there."""
    return typer.Option("--out", "-o", help=help, **extra)


def seed(help: str = "Random seed: the same seed gives the same result.", **extra):
    return typer.Option("--seed", help=help, **{"callback": number(0), **extra})


def json_out(help: str = "Print the result as one JSON object on stdout.", **extra):
    return flag("--json", help=help, **extra)


def quiet(help: str = "No progress bar or status lines on stderr.", **extra):
    return flag("--quiet", "-q", help=help, **extra)


# ----------------------------------------------------- the ablation switches of train and profile
def gtm(help: str = "Global transformation (--no-gtm: the supporting features are fused unshifted).", **extra):
    return flag("--gtm/--no-gtm", help=help, **extra)


def lcm(help: str = "Local calibration (--no-lcm: the fused supporting feature is aggregated as it is).", **extra):
    return flag("--lcm/--no-lcm", help=help, **extra)


def support_offsets(
    help: str = "Supporting frames relative to the key frame, in model order (default -2,-1,1,2); "
    "write --support-offsets=-1,1.",
    **extra,
):
    return typer.Option("--support-offsets", help=help, **{"callback": frame_offsets, **extra})


# ------------------------------------------------- the model options of predict and eval --weights
# (the fields of famicli.inference.predictor.PredictConfig; the commands' defaults are its defaults)
def boxes(help: str = "COCO-style detections JSON (image_id or frame_index).", **extra):
    return typer.Option("--boxes", help=help, **extra)


def box_threshold(help: str = "Minimum box score (default: 0.2 for --boxes, 0.5 for a detector).", **extra):
    return typer.Option("--box-threshold", help=help, **{"callback": number(0, 1), **extra})


def flip(help: str = "Flip test: average with the mirrored crops (twice the model time).", **extra):
    return flag("--flip", help=help, **extra)


def mode(
    help: str = "exact, or fast: each frame's backbone feature computed once and reused by its neighbours "
    "(docs/predict.md, Fast mode).",
    **extra,
):
    return typer.Option("--mode", help=help, **extra)


def heads(
    help: str = "fami (the temporal model) or backbone (its single-frame HRNet alone, one crop per person); "
    "default: backbone for pose-HRNet/DCPose checkpoints, else fami.",
    **extra,
):
    return typer.Option("--heads", help=help, **extra)


def schema(
    help: str = "Keypoints of a pose-HRNet/DCPose checkpoint's heatmaps: coco or posetrack "
    "(default: coco for pose-HRNet, posetrack for DCPose).",
    **extra,
):
    return typer.Option("--schema", help=help, **extra)


def share(
    help: str = "With --mode fast: own (each frame cut with its own box) or union (one crop box shared by "
    "a track's frames of a chunk, within --max-shift).",
    **extra,
):
    return typer.Option("--share", help=help, **extra)


def chunk(
    help: str = "With --mode fast: frames processed together (with --share union: most frames sharing "
    "one crop box per track).",
    **extra,
):
    return typer.Option("--chunk", help=help, **{"callback": number(1), **extra})


def max_shift(
    help: str = "With --mode fast --share union: largest offset of a shared crop box's centre from a "
    "person's own, in box heights.",
    **extra,
):
    return typer.Option("--max-shift", help=help, **{"callback": number(0), **extra})
