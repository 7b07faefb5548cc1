"""Checkpoints: famipose round trip, official/DCPose/HRNet formats, and one clear error per bad file."""

from __future__ import annotations

import pickle

import pytest
import torch

import famicli
from famicli.errors import CheckpointError
from famicli.models.checkpoint import OFFICIAL_PREFIXES, save_checkpoint

OFFICIAL = {
    new: old
    for old, new in [
        ("hrnet.", "backbone."),
        ("feat_global_offset_layers.", "global_transform.offset_layers."),
        ("sup_agg_block.", "global_transform.support_fusion."),
        ("combined_feat_layers.", "local_calibration.combine."),
        ("init_feature_agg_block.", "aggregation."),
        ("agg_final_layer.", "head."),
    ]
}


def to_official(state):
    """famipose keys -> official FAMI-Pose keys (written independently of the loader's table)."""
    out = {}
    for key, value in state.items():
        for i, kind in ((i, k) for i in range(4) for k in ("offsets", "masks", "dcns")):
            prefix = f"local_calibration.{kind}.{i}."
            if key.startswith(prefix):
                name = {"offsets": f"dcn_offset_{i + 1}.", "masks": f"dcn_mask_{i + 1}.", "dcns": f"dcn_{i + 1}."}[kind]
                key = name + key[len(prefix) :]
                break
        else:
            for new, old in OFFICIAL.items():
                if key.startswith(new):
                    key = old + key[len(new) :]
                    break
        out[key] = value
    return out


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return famicli.build_model("tiny").eval()


@pytest.fixture(scope="module")
def clip():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 128, 96, generator=g), torch.randn(2, 4, 3, 128, 96, generator=g)


def heatmaps(model, clip):
    with torch.inference_mode():
        return model.eval()(*clip).heatmaps


def test_round_trip_gives_identical_outputs(tmp_path, tiny, clip):
    path = save_checkpoint(tiny, tmp_path / "tiny.pt", epoch=3)
    loaded = famicli.load_model(path)
    assert loaded.cfg == tiny.cfg
    assert torch.equal(heatmaps(loaded, clip), heatmaps(tiny, clip))
    assert loaded.checkpoint_info["format"] == "famipose"
    raw = torch.load(path, weights_only=True)
    assert raw["famipose_version"] == famicli.__version__ and raw["epoch"] == 3 and len(raw["sha256"]) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.pt"]  # the atomic write left no temp file


def test_official_key_table_is_complete(tiny):
    keys = to_official(tiny.state_dict())
    prefixes = {k.split(".")[0] for k in keys}
    assert prefixes == {
        "hrnet",
        "feat_global_offset_layers",
        "sup_agg_block",
        "combined_feat_layers",
        "init_feature_agg_block",
        "agg_final_layer",
        *(f"dcn_offset_{i}" for i in range(1, 5)),
        *(f"dcn_mask_{i}" for i in range(1, 5)),
        *(f"dcn_{i}" for i in range(1, 5)),
    }
    assert len(OFFICIAL_PREFIXES) == 9


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "module"])
def test_official_format_loads(tmp_path, tiny, clip, wrap):
    state = to_official(tiny.state_dict())
    if wrap == "module":
        state = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    elif wrap == "state_dict":
        state = {"state_dict": state, "epoch": 20}
    torch.save(state, tmp_path / "official.pth")
    loaded = famicli.load_model(tmp_path / "official.pth", variant="tiny")
    assert torch.equal(heatmaps(loaded, clip), heatmaps(tiny, clip))
    assert loaded.checkpoint_info["format"] == "official"


def test_official_depth_is_inferred_without_a_variant(tmp_path):
    torch.manual_seed(0)
    model = famicli.build_model("w32")
    torch.save(to_official(model.state_dict()), tmp_path / "w32.pth")
    loaded = famicli.load_model(tmp_path / "w32.pth")
    assert loaded.cfg.variant == "w32" and loaded.cfg == model.cfg


@pytest.mark.parametrize("prefix", ["", "rough_pose_estimation_net."])
def test_hrnet_and_dcpose_checkpoints_initialize_the_backbone_only(tmp_path, tiny, prefix):
    extra = {"rsb.0.weight": torch.zeros(3)} if prefix else {}  # DCPose's other modules are ignored
    state = {f"{prefix}{k}": v for k, v in tiny.backbone.state_dict().items()} | extra
    torch.save({"state_dict": state}, tmp_path / "hrnet.pth")
    loaded = famicli.load_model(tmp_path / "hrnet.pth", variant="tiny")
    kind, schema = ("dcpose", "posetrack") if prefix else ("hrnet", "coco")
    assert loaded.checkpoint_info["initialized"] == "backbone"
    assert loaded.checkpoint_info["format"] == kind
    assert loaded.checkpoint_info["schema"] == loaded.cfg.schema == schema
    for k, v in tiny.backbone.state_dict().items():
        assert torch.equal(loaded.backbone.state_dict()[k], v)
    other = "posetrack" if schema == "coco" else "coco"
    assert famicli.load_model(tmp_path / "hrnet.pth", variant="tiny", schema=other).cfg.schema == other


def test_schema_of_a_famipose_checkpoint_cannot_be_overridden(tmp_path, tiny):
    path = save_checkpoint(tiny, tmp_path / "t.pt")
    assert famicli.load_model(path).checkpoint_info["schema"] == "posetrack"
    assert "--schema coco applies to pose-HRNet and DCPose checkpoints only" in _error(path, schema="coco")


def test_single_frame_checkpoint_has_only_its_backbone_initialized(tmp_path, tiny):
    path = save_checkpoint(tiny, tmp_path / "t.pt", train_state={"configs": {"train": {"single_frame": True}}})
    info = famicli.load_model(path).checkpoint_info
    assert info["initialized"] == "backbone" and info["format"] == "famipose"


def _error(path, **kw):
    with pytest.raises(CheckpointError) as info:
        famicli.load_model(path, **kw)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_truncated_file(tmp_path, tiny):
    path = save_checkpoint(tiny, tmp_path / "t.pt")
    path.write_bytes(path.read_bytes()[:5000])
    assert "cannot read checkpoint" in _error(path)


def test_missing_file(tmp_path):
    assert _error(tmp_path / "nope.pt") == f"{tmp_path / 'nope.pt'}: no such checkpoint file"


def test_wrong_keys(tmp_path, tiny):
    state = to_official(tiny.state_dict())
    state["agg_final_layer.extra"] = torch.zeros(1)
    del state["dcn_3.bias"]
    torch.save(state, tmp_path / "k.pth")
    message = _error(tmp_path / "k.pth", variant="tiny")
    assert "missing keys: local_calibration.dcns.2.bias" in message
    assert "unexpected keys: head.extra" in message


def test_wrong_shapes(tmp_path, tiny):
    state = to_official(tiny.state_dict())
    torch.save(state, tmp_path / "s.pth")
    message = _error(tmp_path / "s.pth", variant="w48")
    assert "shape mismatch: " in message and "(checkpoint (" in message


def test_pickle_that_is_not_a_state_dict(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    assert _error(tmp_path / "list.pt") == f"{tmp_path / 'list.pt'}: not a state dict: the file holds a list"
    torch.save({"weights": "none"}, tmp_path / "dict.pt")
    assert "entry 'weights' is a str, not a tensor" in _error(tmp_path / "dict.pt")


class Payload:
    pass


def test_arbitrary_python_objects_are_refused(tmp_path):
    with open(tmp_path / "obj.pkl", "wb") as f:
        pickle.dump(Payload(), f)
    torch.save({"model": Payload()}, tmp_path / "obj.pt")
    assert "cannot read checkpoint" in _error(tmp_path / "obj.pkl")
    assert "refused by weights_only loading" in _error(tmp_path / "obj.pt")


def test_corrupted_weights_fail_the_sha256(tmp_path, tiny):
    path = save_checkpoint(tiny, tmp_path / "c.pt")
    raw = torch.load(path, weights_only=True)
    raw["state_dict"]["head.bias"] += 1
    torch.save(raw, path)
    assert "sha256 of the weights does not match" in _error(path)


def test_unrelated_state_dict(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "r.pt")
    assert "not a FAMI-Pose, DCPose or pose-HRNet checkpoint" in _error(tmp_path / "r.pt")
