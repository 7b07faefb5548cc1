"""``profile_model``: FLOPs (deformable convolutions counted), parameters, latency, throughput, memory.

FLOPs are counted once per key frame on the meta device (:mod:`famicli.profiling.flops`); latency is timed
on real tensors under ``torch.inference_mode``: CUDA events after a synchronize on CUDA, ``perf_counter``
on CPU. In the same run: the single-frame backbone (HRNet + its 1x1 head, one crop per key frame) as
the baseline, and a matmul probe giving the machine's peak GFLOP/s next to the model's achieved rate.

One forward on batch B processes B key frames, each a window of 1 + S crops of one person: latency
per key frame = batch latency / B, and per person is the same unit.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from famicli.config import get_variant
from famicli.errors import ConfigError
from famicli.profiling.flops import count_model_flops
from famicli.runtime import DTYPES, check_dtype, resolve_device

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (done, total, description)


@dataclass(frozen=True)
class ProfileConfig:
    """What ``famipose profile`` measures."""

    variant: str | None = None  # preset; None: "w48", or the checkpoint's architecture with `weights`
    weights: str | None = None  # checkpoint to time (FLOPs and speed do not depend on the values)
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    batch_sizes: tuple[int, ...] = (1,)  # key frames per forward; one latency row per size and dtype
    dtypes: tuple[str, ...] = ("fp32",)  # fp32, or bf16/fp16 under autocast
    channels_last: bool = False  # model and inputs in channels_last memory format
    compile: bool = False  # torch.compile the model and the baseline before timing
    warmup: int = 2  # untimed forwards per model, batch size and dtype
    iters: int = 10  # timed forwards per model, batch size and dtype; 0: FLOPs and parameters only
    baseline: bool = True  # also time the single-frame backbone (HRNet + its head)
    probe_seconds: float = 0.5  # time spent per kernel of the matmul peak probe (per dtype)
    seed: int = 0  # seed of the random input crops
    # ablations of the variant (without weights; a checkpoint brings its own): train's --no-gtm, ...
    gtm: bool = True
    lcm: bool = True
    support_offsets: tuple[int, ...] | None = None  # None: the variant's (-2, -1, 1, 2)

    def __post_init__(self):
        bad = [d for d in self.dtypes if d not in DTYPES]
        if bad or not self.dtypes:
            raise ConfigError(f"unknown dtype {(bad or [''])[0]!r}; choose from: {', '.join(DTYPES)}")
        if not self.batch_sizes or any(int(b) != b or b < 1 for b in self.batch_sizes):
            raise ConfigError(f"batch sizes must be positive integers, got {list(self.batch_sizes)}")
        if self.warmup < 0 or self.iters < 0:
            raise ConfigError(f"warmup and iters must be >= 0, got warmup={self.warmup}, iters={self.iters}")


@dataclass
class ProfileResult:
    """Everything :func:`profile_model` measured; ``to_dict()`` is the ``--json`` output (docs/profile.md)."""

    model: dict  # variant, model config, weights
    device: dict  # type, name, threads, torch version
    params: dict  # per module and total
    flops: dict  # per key frame: total, per module, per op, deformable layers, backbone per crop, uncounted
    latency: list[dict] = field(default_factory=list)  # one entry per (dtype, batch size)
    matmul_peak: dict = field(default_factory=dict)  # dtype -> probe results
    options: dict = field(default_factory=dict)  # the ProfileConfig
    provenance: dict = field(default_factory=dict)  # versions, command line, time

    def to_dict(self) -> dict:
        return asdict(self)

    def rows(self) -> list[dict]:
        """Flat rows for CSV: one per (dtype, batch size, model), or one per model without timing."""
        costs = {
            "famipose": (self.params["total"], self.flops["per_key_frame"]),
            "backbone": (self.params["backbone_baseline"], self.flops["backbone_per_crop"]),
        }
        rows = []
        for entry in self.latency or [{}]:
            for m, (params, f) in costs.items():
                if self.latency and m not in entry:
                    continue
                row = {"variant": self.model["variant"], "device": self.device["name"], "model": m}
                if m in entry:
                    t = entry[m]
                    row |= {"dtype": entry["dtype"], "batch": entry["batch"]}
                    row |= {f"{k}_ms_per_key_frame": v for k, v in t["per_key_frame_ms"].items()}
                    row |= {k: t[k] for k in ("key_frames_per_s", "achieved_gflop_s", "peak_gflop_s", "peak_memory_mb")}
                rows.append(
                    row | {"params": params, "gmacs_per_key_frame": f["gmacs"], "gflops_per_key_frame": f["gflops"]}
                )
        return rows


def profile_model(config: ProfileConfig | None = None, *, progress: Progress | None = None, **options) -> ProfileResult:
    """Profile FAMI-Pose: FLOPs, parameters, latency, throughput and peak memory.

    Args:
        config: what to measure; or pass its fields as keywords: ``profile_model(variant="tiny", iters=3)``.
        progress: optional ``progress(done, total, description)`` callback, called once per forward.

    Raises:
        ConfigError: unknown option or value, CUDA asked for without CUDA, a dtype the device's
            kernels do not support (or, on CPU, run over 4x slower than fp32), or ``torch.compile`` failing.
    """
    known = {f.name for f in fields(ProfileConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown profile option {unknown[0]!r}; choose from: {', '.join(sorted(known))}")
    cfg = replace(config or ProfileConfig(), **options)
    device = resolve_device(cfg.device)
    model = None
    if cfg.weights is not None:
        from famicli.models.checkpoint import load_model

        model = load_model(cfg.weights, cfg.variant, device)
        model_cfg = model.cfg
    else:
        offsets = tuple(cfg.support_offsets or get_variant(cfg.variant or "w48").support_offsets)
        model_cfg = get_variant(
            cfg.variant or "w48", gtm=cfg.gtm, lcm=cfg.lcm, support_offsets=offsets, num_support=len(offsets)
        )
    flops, params = count_model_flops(model_cfg)
    result = ProfileResult(
        model={"variant": model_cfg.variant, "weights": cfg.weights, "config": model_cfg.to_dict()},
        device=_device_info(device),
        params=params,
        flops=flops,
        options=asdict(cfg),
    )
    if cfg.iters > 0:
        for name in cfg.dtypes:
            check_dtype(device, name)
        if model is None:  # random weights, seeded without touching the caller's RNG state
            from famicli.models.famipose import FamiPose

            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.device(device):
                torch.manual_seed(cfg.seed)
                model = FamiPose(model_cfg)
        model = model.to(device).eval()
        before = {name: matmul_peak(device, DTYPES[name], cfg.probe_seconds) for name in cfg.dtypes}
        if device.type == "cpu":
            _refuse_slow_dtypes(before, device, cfg.probe_seconds)
        result.latency = _time_all(model, cfg, device, flops, progress)
        for name in cfg.dtypes:  # probed before and after timing: the better of the two (shared machines)
            after = matmul_peak(device, DTYPES[name], cfg.probe_seconds)
            result.matmul_peak[name] = max(before[name], after, key=lambda p: p["peak_gflop_s"])
        for entry in result.latency:
            peak = result.matmul_peak[entry["dtype"]]["peak_gflop_s"]
            for t in (entry[m] for m in ("famipose", "backbone") if m in entry):
                t["peak_gflop_s"], t["fraction_of_peak"] = peak, t["achieved_gflop_s"] / peak
    from famicli.io import provenance

    sha = (getattr(model, "checkpoint_info", None) or {}).get("file_sha256")
    result.provenance = provenance(device=result.device["name"], checkpoint_sha256=sha, seed=cfg.seed)
    return result


SLOW_DTYPE_RATIO = 4.0  # on CPU, a dtype whose matmul peak is this many times below fp32's is refused


def _refuse_slow_dtypes(peaks: dict[str, dict], device: torch.device, seconds: float) -> None:
    """Refuse a reduced-precision dtype the CPU has no fast kernels for (fp16 without AVX512-FP16/AMX
    runs ~100x slower than fp32: one w48 forward takes minutes), before any forward is timed.

    Raises:
        ConfigError: naming the dtype, both measured matmul peaks and the ratio.
    """
    slow = [name for name in peaks if name != "fp32"]
    if not slow:
        return
    fp32 = peaks.get("fp32") or matmul_peak(device, torch.float32, seconds)
    for name in slow:
        ratio = fp32["peak_gflop_s"] / peaks[name]["peak_gflop_s"]
        if ratio > SLOW_DTYPE_RATIO:
            raise ConfigError(
                f"dtype {name!r} is {ratio:.0f}x slower than fp32 on this CPU (matmul peak "
                f"{peaks[name]['peak_gflop_s']:.1f} vs {fp32['peak_gflop_s']:.0f} GFLOP/s: no fast {name} "
                f"kernels); timing it would take minutes; use fp32"
            )


PROBE_MAX_N = {"cuda": 8192, "cpu": 2048}  # largest probe matrix per device type
PROBE_MIN_N = 128  # the calibration's first size
PROBE_MAX_CALL_S = 0.1  # one probe call may take about this long (Ctrl-C is honoured between calls)


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 0.5) -> dict:
    """The machine's measured matmul rate: best GFLOP/s of an n x n x n product as ``torch.mm`` (BLAS)
    and as the same product written as a 1x1 convolution (the conv library: oneDNN, cuDNN).

    ``peak_gflop_s`` is the larger of the two. Nothing is hard-coded: ``n`` is calibrated, doubling
    from :data:`PROBE_MIN_N` up to :data:`PROBE_MAX_N` (2048 on CPU, 8192 on CUDA) while one call of
    each kernel stays under :data:`PROBE_MAX_CALL_S` (fp16 on a CPU without fp16 units is many times
    slower than fp32); then each kernel runs for about ``seconds`` and the fastest call counts. The
    whole probe takes about ``2 * seconds`` plus a second of calibration on any dtype and device.
    """
    max_n = PROBE_MAX_N.get(device.type, PROBE_MAX_N["cpu"])
    gen = torch.Generator(device=device).manual_seed(0)

    def kernels(n: int) -> dict[str, Callable]:
        a = torch.randn(n, n, generator=gen, device=device, dtype=dtype)
        b = torch.randn(n, n, generator=gen, device=device, dtype=dtype)
        x = a.view(1, n, n // 32, 32)  # (n, n) -> (1, C=n, h=n/32, w=32) feature map
        wt = b.view(n, n, 1, 1)  # (n, n) -> (C_out, C_in, 1, 1)
        return {"mm": lambda: torch.mm(a, b), "conv1x1": lambda: F.conv2d(x, wt)}

    with torch.inference_mode():
        n = probe_size(lambda m: max(_best_call_s(fn, device, 2) for fn in kernels(m).values()), max_n)
        rates, calls = {}, {}
        for name, fn in kernels(n).items():
            fn()
            best, count, start = float("inf"), 0, time.perf_counter()
            while count == 0 or time.perf_counter() - start < seconds:
                best = min(best, _best_call_s(fn, device, 1))
                count += 1
            rates[name], calls[name] = 2 * n**3 / best / 1e9, count
    return {
        "n": n,
        "calls": calls,
        "mm_gflop_s": rates["mm"],
        "conv1x1_gflop_s": rates["conv1x1"],
        "peak_gflop_s": max(rates.values()),
    }


def probe_size(call_seconds: Callable[[int], float], max_n: int, max_call_s: float = PROBE_MAX_CALL_S) -> int:
    """The probe's matrix size: doubled from :data:`PROBE_MIN_N` while the next size's call, predicted
    as 8x this one's (an n^3 cost), stays under ``max_call_s`` and ``n`` stays <= ``max_n``."""
    n = min(PROBE_MIN_N, max_n)
    while 2 * n <= max_n and 8 * call_seconds(n) <= max_call_s:
        n *= 2
    return n


def _best_call_s(fn: Callable, device: torch.device, repeats: int) -> float:
    """The fastest of ``repeats`` synchronized calls of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        _synchronize(device)
        t0 = time.perf_counter()
        fn()
        _synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _time_all(model, cfg: ProfileConfig, device, flops: dict, progress: Progress | None) -> list[dict]:
    h, w = model.cfg.input_size
    s = model.cfg.num_support
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    fami, backbone = model, model.backbone
    if cfg.compile:
        fami, backbone = torch.compile(model), torch.compile(model.backbone)
    per_kf = {"famipose": flops["per_key_frame"]["flops"], "backbone": flops["backbone_per_crop"]["flops"]}
    runs = [(d, b) for d in cfg.dtypes for b in cfg.batch_sizes]
    per_run = (max(cfg.warmup, int(cfg.compile)) + cfg.iters) * (2 if cfg.baseline else 1)
    done, total = 0, per_run * len(runs)

    def tick(description: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, description)

    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    entries = []
    for dtype, batch in runs:
        key = torch.randn(batch, 3, h, w, generator=gen).to(device).contiguous(memory_format=memory_format)
        support = torch.randn(batch, s, 3, h, w, generator=gen).to(device)
        autocast = torch.autocast(device.type, dtype=DTYPES[dtype]) if dtype != "fp32" else contextlib.nullcontext()
        entry = {"batch": batch, "dtype": dtype}
        calls = {"famipose": lambda k=key, x=support: fami(k, x), "backbone": lambda k=key: backbone(k)}
        for name in ("famipose", "backbone") if cfg.baseline else ("famipose",):
            desc = f"{name} {dtype} batch {batch}"
            log.info("timing %s: %d warm-up + %d timed forwards", desc, cfg.warmup, cfg.iters)
            try:
                with torch.inference_mode(), autocast:
                    times, peak_mb = _time(calls[name], cfg, device, lambda d=desc: tick(d))
            except Exception as exc:
                explained = _explain(exc, cfg, device, dtype, batch)
                if explained is exc:
                    raise
                raise explained from None
            entry[name] = _latency_stats(times, batch, per_kf[name] * batch)
            entry[name]["peak_memory_mb"] = peak_mb
        if cfg.baseline:
            f50, b50 = entry["famipose"]["per_key_frame_ms"]["p50"], entry["backbone"]["per_key_frame_ms"]["p50"]
            entry["temporal_overhead"] = {
                "ms_per_key_frame_p50": f50 - b50,  # FAMI-Pose minus the single-frame model
                "ratio_p50": f50 / b50,
                "alignment_estimate_ms_p50": f50 - (1 + s) * b50,  # minus 1+S backbone crops
            }
        entries.append(entry)
    return entries


def _time(fn: Callable, cfg: ProfileConfig, device: torch.device, tick: Callable) -> tuple[list[float], float]:
    """Warm up, then time ``cfg.iters`` calls of ``fn``; returns (ms per call, peak memory MB)."""
    _reset_peak_memory(device)
    for _ in range(max(cfg.warmup, int(cfg.compile))):  # with --compile, the first call compiles
        fn()
        tick()
    times = []
    _synchronize(device)
    for _ in range(cfg.iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        tick()
    return times, _peak_memory_mb(device)


def _explain(exc: Exception, cfg: ProfileConfig, device: torch.device, dtype: str, batch: int) -> Exception:
    """A one-line ConfigError for failures the user can fix by an option, else ``exc`` itself."""
    if isinstance(exc, torch.OutOfMemoryError):
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return ConfigError(f"out of {device.type} memory at batch {batch} ({dtype}); use a smaller --batch")
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if cfg.compile:
        return ConfigError(f"torch.compile failed on {device.type}: {reason}; run without --compile")
    if dtype != "fp32":
        return ConfigError(f"dtype {dtype!r} failed on {device.type}: {reason}; use fp32")
    return exc


def _latency_stats(times_ms: list[float], batch: int, flop_per_batch: int) -> dict:
    t = np.asarray(times_ms)

    def stats(x: np.ndarray) -> dict:
        p50, p95, p99 = np.percentile(x, [50, 95, 99])
        return {
            "p50": float(p50),
            "p95": float(p95),
            "p99": float(p99),
            "mean": float(x.mean()),
            "min": float(x.min()),
            "max": float(x.max()),
        }

    achieved = flop_per_batch / (t.mean() / 1e3) / 1e9
    return {
        "iters": len(times_ms),
        "batch_ms": stats(t),
        "per_key_frame_ms": stats(t / batch),
        "key_frames_per_s": float(batch / (t.mean() / 1e3)),
        "achieved_gflop_s": float(achieved),
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # Linux: "5" resets the peak RSS (VmHWM) of this process
        Path("/proc/self/clear_refs").write_text("5")


def _peak_memory_mb(device: torch.device) -> float:
    """CUDA: max allocated by tensors since the reset. CPU: peak resident set of the process (VmHWM since
    the reset on Linux; the lifetime peak elsewhere), so it includes Python, torch and the weights."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    with contextlib.suppress(OSError, IndexError, ValueError):
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB -> MB
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB on Linux


def _device_info(device: torch.device) -> dict:
    info = {"type": device.type, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["name"] = f"{device} ({torch.cuda.get_device_name(device)})"
        info["memory_kind"] = "cuda max allocated"
        info["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    else:
        import platform

        info["name"] = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        info["memory_kind"] = "cpu peak rss (process)"
    return info
