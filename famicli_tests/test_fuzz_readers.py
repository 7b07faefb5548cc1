"""The readers of user files never crash: any input is read or refused with one ``FamiposeError`` line.

Property-based (Hypothesis): valid PoseTrack18, PoseTrack17 (``annolist``) and boxes documents with one
field replaced by an arbitrary JSON value (None, bool, huge integers, NaN/Infinity tokens, strings,
lists, objects, deep nesting) or removed, and arbitrary JSON documents. The default suite runs a few
dozen examples per property; ``-m slow`` runs 2000. Known answers for the cases a tester found: a track
id of 1e30, an id given as a list, 100,000-deep nesting, non-finite boxes and keypoints.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from famicli.errors import FamiposeError, InputError
from famicli.formats.boxes import BoxFile
from famicli.formats.posetrack import read_sequence
from famicli.formats.validate import Issues, check_sequence
from famicli.inference.results import VideoPrediction
from famicli.io import write_json_atomic
from famicli.keypoints import JOINT_NAMES

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DEEP = "__deep__"  # stands for a deeply nested list in the written text
SEQ = "000342_mpii_test"
ID0 = 10003420000  # PoseTrack18 image id of frame 0 of sequence 342


def _frame(t: int) -> str:
    return f"images/val/{SEQ}/{t:06d}.jpg"


def posetrack18_doc() -> dict:
    images = [{"id": ID0 + t, "file_name": _frame(t), "is_labeled": True} for t in range(2)]
    images[0] |= {"ignore_regions_x": [[0, 5, 5]], "ignore_regions_y": [[0, 0, 5]]}
    anns = [
        {
            "image_id": ID0 + t,
            "track_id": k,
            "category_id": 1,
            "keypoints": [v for j in range(17) for v in (10.0 + j + k, 20.0 + j, 1)],
            "scores": [0.5] * 17,
            "score": 0.9,
            "bbox": [1, 2, 30, 40],
            "bbox_head": [5, 5, 10, 10],
        }
        for t in range(2)
        for k in range(2)
    ]
    return {"images": images, "annotations": anns, "categories": [{"name": "person", "keypoints": list(JOINT_NAMES)}]}


def annolist_doc() -> dict:
    def rect(k: int) -> dict:
        points = [{"id": [j], "x": [10.0 + j], "y": [20.0 + k], "score": [0.5]} for j in range(15)]
        return {
            "x1": [1],
            "y1": [2],
            "x2": [10],
            "y2": [12],
            "track_id": [k],
            "score": [0.9],
            "annopoints": [{"point": points}],
        }

    region = {"point": [{"x": [0], "y": [0]}, {"x": [5], "y": [0]}, {"x": [5], "y": [5]}]}
    return {
        "annolist": [
            {
                "image": [{"name": _frame(t)}],
                "is_labeled": [1],
                "annorect": [rect(0), rect(1)],
                "ignore_regions": [region],
            }
            for t in range(2)
        ]
    }


def boxes_list_doc() -> list:
    return [
        {"image_id": ID0 + t, "bbox": [1, 2, 30, 40], "score": 0.9, "category_id": 1, "track_id": k}
        for t in range(2)
        for k in range(2)
    ]


def boxes_posetrack_doc() -> dict:
    doc = posetrack18_doc()
    return {"images": doc["images"], "annotations": boxes_list_doc()}


def boxes_keyed_doc() -> dict:
    return {"0": [[1, 2, 30, 40, 0.9]], "1": [{"bbox": [1, 2, 30, 40], "score": 0.8}]}


# -- strategies ---------------------------------------------------------------------------------------------

huge_ints = st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30), 10**400, -(10**400)])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e30, 1e300, -1e308, math.inf, -math.inf, math.nan])
    | st.text(max_size=8)
    | st.sampled_from(["", "1", "²", "12.5", "a\nb", DEEP])
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
deep_depth = st.sampled_from([50, 1000, 5000, 100_000])


def _paths(value, prefix=()):
    """Every location in a JSON document, as a tuple of keys and indices (the root is ``()``)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated(draw, make):
    """A valid document from ``make()`` with one location replaced by an arbitrary value or removed."""
    doc = make()
    where = draw(st.sampled_from(list(_paths(doc))))
    if not where:
        return draw(json_values)
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = draw(json_values)
    return doc


def _text(doc, depth: int) -> str:
    """``doc`` as JSON text (NaN and Infinity tokens allowed), DEEP expanded to ``depth`` nested lists."""
    return json.dumps(doc, allow_nan=True).replace(json.dumps(DEEP), "[" * depth + "]" * depth)


def _one_line_or_fine(call) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy RuntimeWarnings must not reach stderr
            call()
    except FamiposeError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)


def _check_sequence_text(text: str, role: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{SEQ}.json"
        path.write_text(text)

        def read():
            issues = Issues(strict=False, log=False)
            seq = read_sequence(path, role, issues)
            check_sequence(seq, role, issues)
            issues.raise_errors()

        _one_line_or_fine(read)


def _check_boxes_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "boxes.json"
        path.write_text(text)

        def read():
            video = BoxFile(path).for_video(SEQ, 2)
            for t in range(2):
                video(t, None)

        _one_line_or_fine(read)


# -- properties (fast profile in the default suite) ---------------------------------------------------------


@pytest.mark.parametrize("role", ["gt", "pred", "data"])
@FAST
@given(doc=mutated(posetrack18_doc), depth=deep_depth)
def test_posetrack18_mutations_read_or_refused(role, doc, depth):
    _check_sequence_text(_text(doc, depth), role)


@pytest.mark.parametrize("role", ["gt", "pred"])
@FAST
@given(doc=mutated(annolist_doc), depth=deep_depth)
def test_annolist_mutations_read_or_refused(role, doc, depth):
    _check_sequence_text(_text(doc, depth), role)


@pytest.mark.parametrize("make", [boxes_list_doc, boxes_posetrack_doc, boxes_keyed_doc])
@FAST
@given(data=st.data(), depth=deep_depth)
def test_boxes_mutations_read_or_refused(make, data, depth):
    _check_boxes_text(_text(data.draw(mutated(make)), depth))


@FAST
@given(doc=json_values, depth=deep_depth)
def test_arbitrary_documents_read_or_refused(doc, depth):
    text = _text(doc, depth)
    _check_sequence_text(text, "pred")
    _check_boxes_text(text)


# -- the long profile -------------------------------------------------------------------------------------


@pytest.mark.slow
@LONG
@given(doc=mutated(posetrack18_doc), role=st.sampled_from(["gt", "pred", "data"]), depth=deep_depth)
def test_posetrack18_mutations_long(doc, role, depth):
    _check_sequence_text(_text(doc, depth), role)


@pytest.mark.slow
@LONG
@given(doc=mutated(annolist_doc), role=st.sampled_from(["gt", "pred", "data"]), depth=deep_depth)
def test_annolist_mutations_long(doc, role, depth):
    _check_sequence_text(_text(doc, depth), role)


@pytest.mark.slow
@LONG
@given(data=st.data(), make=st.sampled_from([boxes_list_doc, boxes_posetrack_doc, boxes_keyed_doc]), depth=deep_depth)
def test_boxes_mutations_long(data, make, depth):
    _check_boxes_text(_text(data.draw(mutated(make)), depth))


# -- known answers ----------------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = f"{SEQ}.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("value", ["1e30", "1000000000000000000000000000000", "9223372036854775808", str(10**400)])
def test_huge_track_id_is_refused(tmp_path, value):
    doc = posetrack18_doc()
    doc["annotations"][0]["track_id"] = "TID"
    path = _write(tmp_path, json.dumps(doc).replace('"TID"', value))
    with pytest.raises(InputError, match=r"annotation 0: track_id: .*(not an integer|does not fit a 64-bit integer)"):
        read_sequence(path, "pred", Issues(strict=False))


def test_huge_annolist_track_id_is_refused(tmp_path):
    doc = annolist_doc()
    doc["annolist"][0]["annorect"][0]["track_id"] = [2**63]
    with pytest.raises(InputError, match=r"annorect 0: track_id: 9223372036854775808 does not fit a 64-bit"):
        read_sequence(_write(tmp_path, json.dumps(doc)), "gt", Issues(strict=False))


def test_image_id_given_as_a_list(tmp_path):
    doc = posetrack18_doc()
    doc["annotations"][0]["image_id"] = [ID0]  # matches no image: ignored as poseval ignores orphans
    issues = Issues(strict=False, log=False)
    seq = read_sequence(_write(tmp_path, json.dumps(doc)), "pred", issues)
    assert len(seq.track) == 3 and issues.kinds == ["orphans"]
    doc["images"][0]["id"] = {"id": ID0}
    with pytest.raises(InputError, match=r"000000.jpg: id: \{.id.: 10003420000\} is not an image id"):
        read_sequence(_write(tmp_path, json.dumps(doc)), "pred", Issues(strict=False))


def test_boxes_ids_given_as_lists(tmp_path):
    doc = boxes_posetrack_doc()
    doc["images"][1]["id"] = [ID0 + 1]
    with pytest.raises(InputError, match=r"boxes.json: images: id: every image needs an integer 'id'"):
        BoxFile(_write(tmp_path, json.dumps(doc), "boxes.json"))
    doc = boxes_list_doc()
    doc[2]["image_id"] = [ID0 + 1]
    with pytest.raises(InputError, match=r"entry 2: image_id: expected a non-negative integer, got \[10003420001\]"):
        BoxFile(_write(tmp_path, json.dumps(doc), "boxes.json"))
    doc = boxes_list_doc()
    doc[1]["track_id"] = 10**30
    with pytest.raises(InputError, match=r"entry 1: track_id: 10{30} does not fit a 64-bit integer"):
        BoxFile(_write(tmp_path, json.dumps(doc), "boxes.json"))


def test_deep_nesting_is_refused(tmp_path):
    text = "[" * 100_000 + "]" * 100_000
    with pytest.raises(InputError, match=r"expected a JSON object"):
        read_sequence(_write(tmp_path, text), "gt", Issues())
    with pytest.raises(InputError, match=r"boxes.json: (not valid JSON \(nested too deeply\)|entry 0: expected)"):
        BoxFile(_write(tmp_path, text, "boxes.json"))
    doc = posetrack18_doc()
    doc["annotations"][0]["track_id"] = DEEP  # the message shows the value cut short, not 100,000 levels
    with pytest.raises(InputError, match=r"annotation 0: track_id: \[\[\[\[\.\.\.\]\]\]\] is not an integer$"):
        read_sequence(_write(tmp_path, _text(doc, 100_000)), "pred", Issues())
    doc = boxes_list_doc()
    doc[0]["bbox"] = DEEP
    with pytest.raises(InputError, match=r"(nested too deeply|entry 0: bbox: expected \[x, y, w, h\], got \[\[\[)"):
        BoxFile(_write(tmp_path, _text(doc, 100_000), "boxes.json"))


def test_non_finite_boxes_are_dropped_and_counted(tmp_path, caplog):
    doc = boxes_list_doc()
    doc[0]["bbox"][0] = math.nan
    doc[1]["score"] = math.inf
    doc[2]["bbox"][3] = 10**400  # beyond float range
    doc[3]["bbox"][0] = 1e300  # finite, but beyond any frame (it overflowed the drawing code)
    doc.append({"image_id": ID0, "bbox": [-1e6, 2, 1e6, 40], "score": 0.9, "category_id": 1, "track_id": 5})
    path = _write(tmp_path, json.dumps(doc, allow_nan=True), "boxes.json")
    with caplog.at_level(logging.WARNING, logger="famicli.formats.boxes"):
        boxes = BoxFile(path)
    assert boxes.counts == {"kept": 1, "below_threshold_or_empty": 0, "not_finite": 4}
    assert "4 boxes with a coordinate or score that is not finite, or a coordinate beyond ±1e+06 px" in caplog.text
    video = boxes.for_video(SEQ, 2)
    assert video.description["boxes"] == 1 and video.description["not_finite_dropped"] == 4
    assert np.isfinite(video(1, None).boxes).all()


def test_huge_finite_values_give_no_numpy_warning(tmp_path):
    doc = posetrack18_doc()
    doc["annotations"][0]["bbox_head"] = [1e308, 1e308, 1e308, 1e308]
    path = _write(tmp_path, json.dumps(doc))
    issues = Issues(strict=False, log=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_sequence(read_sequence(path, "gt", issues), "gt", issues)
    assert any("bbox_head: not finite" in e for e in issues.errors)


def _prediction(keypoints: np.ndarray) -> VideoPrediction:
    n = len(keypoints)
    frame = SimpleNamespace(
        boxes=np.tile([1.0, 2.0, 30.0, 40.0], (n, 1)),
        box_scores=np.ones(n),
        track_ids=np.arange(n),
        keypoints=keypoints,
        backbone=keypoints,
    )
    images = [{"id": ID0, "file_name": _frame(0)}]
    return VideoPrediction(SEQ, images, [frame], {})


def test_persons_not_finite_are_not_written(tmp_path):
    kp = np.ones((3, 17, 3))
    kp[0, 4, 0] = np.nan  # a NaN coordinate (e.g. NaN weights)
    kp[2, 0, 2] = np.inf  # an infinite score
    result = _prediction(kp)
    doc = result.to_posetrack()
    assert [a["track_id"] for a in doc["annotations"]] == [1]
    assert result.record["persons_not_finite"] == {"famipose": 2}
    assert [r["track_id"] for r in result.to_coco()] == [1]
    out = write_json_atomic(tmp_path / "out.json", doc)
    assert json.loads(out.read_text(), parse_constant=pytest.fail)["annotations"][0]["track_id"] == 1


def test_write_json_atomic_refuses_nan(tmp_path):
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_json_atomic(tmp_path / "x.json", {"v": math.nan})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", [True, 3, "x", {"a": 1}])
def test_dataset_annotations_not_a_list_are_refused(tmp_path, value):
    """Found by the long fuzz profile: a dataset file's annotations must be a list (or absent: a test split)."""
    doc = posetrack18_doc()
    doc["annotations"] = value
    with pytest.raises(InputError, match=r": annotations: missing or not a list$"):
        read_sequence(_write(tmp_path, json.dumps(doc)), "data", Issues(strict=False))
    del doc["annotations"]
    seq = read_sequence(_write(tmp_path, json.dumps(doc)), "data", Issues(strict=False))
    assert len(seq.track) == 0 and seq.n_frames == len(doc["images"])
