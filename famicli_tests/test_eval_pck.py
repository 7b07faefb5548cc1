"""Sub-JHMDB PCK@0.2 (box) and tPCK@0.2 (torso) on a small case computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.io import savemat
from typer.testing import CliRunner

import famicli
from famicli.cli.app import app
from famicli.errors import InputError

runner = CliRunner()
# GT of every frame: x spans 0..100 and y 0..50, so the box size is 100 (threshold 20 px);
# left shoulder (4) and right hip (5) are 50.5 px apart (torso threshold 10.1 px).
GT = np.stack([np.arange(15) * 100 / 14, (np.arange(15) % 2) * 50.0], axis=1)  # (15, 2)


def write_mat(path, joints):  # joints (T, 15, 2) -> pos_img (2, 15, T)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"pos_img": joints.transpose(2, 1, 0)})


@pytest.fixture
def jhmdb(tmp_path):
    root, pred = tmp_path / "sub-jhmdb", tmp_path / "pred"
    for video in ("v1", "v2"):
        write_mat(root / "joint_positions" / "walk" / video / "joint_positions.mat", np.stack([GT, GT]))
    (root / "splits").mkdir()
    (root / "splits" / "walk_test_split1.txt").write_text("v1.avi 2\nv2.avi 1\n")
    (root / "splits" / "walk_test_split2.txt").write_text("v1.avi 1\nv2.avi 2\n")
    # v1 (split 1): frame 0: all joints 5 px off, head 15 px (box yes, torso no), right wrist
    # 30 px (no, no); frame 1: exact but right ankle 25 px off (no, no)
    p = np.stack([GT, GT])
    p[0, :, 0] += 5
    p[0, 2, 0] = GT[2, 0] + 15
    p[0, 11, 0] = GT[11, 0] + 30
    p[1, 13, 1] += 25
    (pred / "walk").mkdir(parents=True)
    (pred / "walk" / "v1.json").write_text(json.dumps({"keypoints": p.tolist()}))
    # v2 (split 2): perfect, in the GT's own .mat layout
    write_mat(pred / "walk" / "v2" / "joint_positions.mat", np.stack([GT, GT]))
    return root, pred


def test_pck_by_hand(jhmdb):
    root, pred = jhmdb
    pck = famicli.evaluate(root, pred, dataset="jhmdb").pck
    split1_box = {
        "Head": 100,
        "Sho": 100,
        "Elb": 100,
        "Wri": 75,
        "Hip": 100,
        "Knee": 100,
        "Ank": 75,
        "Mean": 100 * 12 / 13,
    }
    split1_torso = dict(split1_box, Head=50, Mean=100 * 11.5 / 13)
    assert pck["per_split"]["1"]["box"] == pytest.approx(split1_box)
    assert pck["per_split"]["1"]["torso"] == pytest.approx(split1_torso)
    assert all(v == 100 for v in pck["per_split"]["2"]["box"].values())
    assert pck["box"] == pytest.approx({k: (v + 100) / 2 for k, v in split1_box.items()})
    assert pck["torso"] == pytest.approx({k: (v + 100) / 2 for k, v in split1_torso.items()})
    assert pck["splits"] == [1, 2] and pck["test_videos"] == 2 and pck["frames"] == 4
    assert "max(width, height)" in pck["normalization"]["box"]


def test_per_split_prediction_folders(jhmdb):
    root, pred = jhmdb
    split1 = pred / "split1" / "walk"
    split1.mkdir(parents=True)
    (split1 / "v1.json").write_text(json.dumps({"keypoints": np.stack([GT, GT]).tolist()}))
    (pred / "split2").mkdir()
    write_mat(pred / "split2" / "walk" / "v2" / "joint_positions.mat", np.stack([GT, GT]))
    pck = famicli.evaluate(root, pred, dataset="jhmdb").pck
    assert pck["box"]["Mean"] == pytest.approx(100)


def test_cli_tables_and_json(jhmdb):
    root, pred = jhmdb
    result = runner.invoke(app, ["eval", "--dataset", "jhmdb", "--gt", str(root), "--pred", str(pred)])
    assert result.exit_code == 0, result.output
    assert "PCK@0.2" in result.stdout and "tPCK@0.2" in result.stdout
    assert "max(width, height)" in result.stdout
    result = runner.invoke(app, ["eval", "--dataset", "jhmdb", "--root", str(root), "--pred", str(pred), "--json"])
    assert json.loads(result.stdout)["pck"]["box"]["Mean"] == pytest.approx(50 + 50 * 12 / 13)


def test_missing_prediction_and_frame_mismatch(jhmdb):
    root, pred = jhmdb
    (pred / "walk" / "v1.json").write_text(json.dumps({"keypoints": [GT.tolist()]}))
    with pytest.raises(InputError, match=r"walk/v1: frames: 1 predicted, GT has 2"):
        famicli.evaluate(root, pred, dataset="jhmdb")
    (pred / "walk" / "v1.json").unlink()
    with pytest.raises(InputError, match=r"v1.json: file: missing prediction for test video"):
        famicli.evaluate(root, pred, dataset="jhmdb")
