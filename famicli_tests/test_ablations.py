"""The ablation switches (issue 18): no GTM, no LCM, neither, and the supporting-frame offsets. Each is
tested for its parameters, forward shapes, a checkpoint round trip, the fast path, the windows inference
cuts, and ``famipose profile``."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import famicli
from famicli.cli.app import app
from famicli.config import ablation_label, get_variant, train_configs
from famicli.errors import ConfigError
from famicli.inference.predictor import PoseEstimator, PredictConfig
from famicli.models.folded import optimize_for_inference
from famicli.profiling.profiler import profile_model

runner = CliRunner()
ABLATIONS = {
    "full": {},
    "no_gtm": {"gtm": False},
    "no_lcm": {"lcm": False},
    "neither": {"gtm": False, "lcm": False},
    "two_frames": {"support_offsets": (-1, 1)},
    "six_frames": {"support_offsets": (-3, -2, -1, 1, 2, 3)},
}


def _cfg(name: str):
    return train_configs("tiny", **ABLATIONS[name])[0]


def _model(name: str):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return famicli.build_model(_cfg(name)).eval()


@pytest.fixture(scope="module")
def full():
    return _model("full")


def _inputs(cfg, b: int = 2):
    g = torch.Generator().manual_seed(1)
    h, w = cfg.input_size
    return torch.randn(b, 3, h, w, generator=g), torch.randn(b, cfg.num_support, 3, h, w, generator=g)


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_parameters_and_forward_shapes(name, full):
    model, cfg = _model(name), _cfg(name)
    groups, base = model.parameter_groups(), full.parameter_groups()
    assert groups["backbone"] == base["backbone"] and groups["head"] == base["head"]
    gtm_regression = sum(p.numel() for p in full.global_transform.offset_layers.parameters())
    expected_gtm = base["global_transformation"] - (0 if cfg.gtm else gtm_regression)
    if name in ("two_frames", "six_frames"):  # the fusion's input is S * C channels
        assert groups["global_transformation"] != base["global_transformation"]
    else:
        assert groups["global_transformation"] == expected_gtm
    assert groups["local_calibration"] == (base["local_calibration"] if cfg.lcm else 0)
    key, support = _inputs(cfg)
    with torch.no_grad():
        out = model(key, support)
    h, w = cfg.heatmap_size
    assert out.heatmaps.shape == out.backbone_heatmaps.shape == (2, 17, h, w)
    assert out.gtm_translation.shape == (2, cfg.num_support, 2)
    if not cfg.gtm:
        assert not out.gtm_translation.any()  # the supporting features are fused unshifted
    assert len(out.offsets) == len(out.masks) == (4 if cfg.lcm else 0)
    if not cfg.lcm:  # the fused support is aggregated as it is
        assert torch.equal(
            out.features["support"], model.global_transform(out.features["key"], _feat(model, support))[0]
        )
    assert (
        ablation_label(cfg)
        == {
            "full": "",
            "no_gtm": "no GTM",
            "no_lcm": "no LCM",
            "neither": "no GTM, no LCM",
            "two_frames": "offsets -1,1",
            "six_frames": "offsets -3,-2,-1,1,2,3",
        }[name]
    )


def _feat(model, support):
    b, s = support.shape[:2]
    return model.features(support.flatten(0, 1)).unflatten(0, (b, s))


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_checkpoint_round_trip_and_fast_path(name, tmp_path):
    model, cfg = _model(name), _cfg(name)
    path = famicli.save_checkpoint(model, tmp_path / f"{name}.pt")
    loaded = famicli.load_model(path)
    assert loaded.cfg == cfg and (loaded.cfg.gtm, loaded.cfg.lcm) == (cfg.gtm, cfg.lcm)
    assert loaded.cfg.support_offsets == cfg.support_offsets
    key, support = _inputs(cfg)
    with torch.no_grad():
        a, b = model(key, support).heatmaps, loaded(key, support).heatmaps
        fast = optimize_for_inference(loaded)(key, support).heatmaps
    assert torch.equal(a, b)
    torch.testing.assert_close(fast, a, rtol=1e-4, atol=1e-5)
    estimator = PoseEstimator.from_config(loaded, PredictConfig(device="cpu"), torch.device("cpu"))
    assert estimator.cfg.offsets == cfg.support_offsets  # inference cuts the frames the model was built for


@pytest.mark.parametrize("name", ["no_gtm", "neither", "six_frames"])
def test_profile_shows_the_change(name):
    full = profile_model(variant="tiny", iters=0)
    options = ABLATIONS[name]
    ablated = profile_model(variant="tiny", iters=0, **options)
    model = _model(name)
    assert ablated.params["total"] == sum(model.parameter_groups().values())
    assert tuple(ablated.model["config"]["support_offsets"]) == _cfg(name).support_offsets
    more = name == "six_frames"
    assert (ablated.flops["per_key_frame"]["gflops"] > full.flops["per_key_frame"]["gflops"]) == more
    assert (ablated.params["total"] > full.params["total"]) == more


def test_profile_cli_names_the_ablation():
    result = runner.invoke(app, ["profile", "--variant", "tiny", "--iters", "0", "--no-lcm", "--support-offsets=-1,1"])
    assert result.exit_code == 0, result.output
    assert "tiny (128×96, no LCM, offsets -1,1)" in result.stdout
    as_json = runner.invoke(app, ["profile", "--variant", "tiny", "--iters", "0", "--no-gtm", "--json"])
    config = json.loads(as_json.stdout)["model"]["config"]
    assert config["gtm"] is False and config["lcm"] is True


@pytest.mark.parametrize("offsets, code", [("0,1", 1), ("-1,-1", 1), ("1,x", 2)])
def test_bad_support_offsets_are_refused(offsets, code):
    result = runner.invoke(app, ["train", f"--support-offsets={offsets}", "--out", "never"])
    assert result.exit_code == code and "Traceback" not in result.output  # out of range: 1; not numbers: usage, 2
    with pytest.raises((ConfigError, ValueError)):
        train_configs("tiny", support_offsets=tuple(int(v) for v in offsets.split(",")))


def test_support_offsets_must_match_num_support():
    with pytest.raises(ConfigError, match="support_offsets"):
        get_variant("tiny", support_offsets=(-1, 1))
    with pytest.raises(ConfigError, match="distinct non-zero"):  # every way of making a model checks them
        get_variant("tiny", support_offsets=(0, 1, 2, 3))
    cfg = train_configs("tiny", support_offsets=(-1, 1))
    assert cfg[0].num_support == 2 and cfg[1].offsets == (-1, 1)


def test_every_command_builds_the_checkpoints_model(tmp_path):
    """predict and viz run a two-frame, no-LCM checkpoint with its own windows (-1, +1); viz offsets refuses
    it (no deformable offsets to show)."""
    path = famicli.save_checkpoint(
        famicli.build_model(train_configs("tiny", lcm=False, support_offsets=(-1, 1))[0]), tmp_path / "a.pt"
    )
    out = tmp_path / "pred"
    result = runner.invoke(
        app, ["predict", *_demo(), "-w", str(path), "--out", str(out), "-q", "--json", "--no-render"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["data"]["offsets"] == [-1, 1] and record["model"]["lcm"] is False
    viz = runner.invoke(app, ["viz", "heatmaps", "-w", str(path), "--out", str(tmp_path / "h.png"), "--json"])
    assert viz.exit_code == 0, viz.output
    offsets = runner.invoke(app, ["viz", "offsets", "-w", str(path), "--out", str(tmp_path / "o.png")])
    assert offsets.exit_code == 1 and "has no local calibration (trained with --no-lcm)" in offsets.stderr


def _demo() -> list[str]:
    from famicli.data.synthtrack import demo

    video = demo.default_video()
    if video is None:
        pytest.skip("the bundled demo clip is not installed")
    return [str(video)]
