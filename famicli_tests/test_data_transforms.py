"""Crop geometry and targets on hand-checkable cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from famicli.data import transforms as T
from famicli.errors import ConfigError


def _official_affine(center, scale, rot, output_size, unbiased):
    """The release's 3-point construction (cv2.getAffineTransform replaced by a linear solve)."""
    src_w = scale[0] * 200.0
    dst_w, dst_h = output_size
    a, b = (src_w - 1, dst_w - 1) if unbiased else (src_w, dst_w)
    r = math.radians(rot)
    sn, cs = math.sin(r), math.cos(r)
    src_dir = np.array([0 * cs - (a * -0.5) * sn, 0 * sn + (a * -0.5) * cs])
    d0 = np.array([(dst_w - 1) * 0.5, (dst_h - 1) * 0.5]) if unbiased else np.array([dst_w * 0.5, dst_h * 0.5])
    src = [np.asarray(center, float), np.asarray(center, float) + src_dir]
    dst = [d0, d0 + np.array([0, b * -0.5])]
    for pts in (src, dst):
        d = pts[0] - pts[1]
        pts.append(pts[1] + np.array([-d[1], d[0]]))
    # solve M [x y 1]^T = dst for the 2x3 M
    A = np.array([[p[0], p[1], 1.0] for p in src])  # (3, 3)
    return np.linalg.solve(A, np.array(dst)).T  # (3, 2) -> (2, 3)


@pytest.mark.parametrize("unbiased", [True, False])
def test_affine_matrix_equals_the_official_construction(unbiased):
    rng = np.random.default_rng(0)
    for _ in range(20):
        center = rng.uniform(0, 500, 2)
        scale = rng.uniform(0.3, 3, 2)
        rot = float(rng.uniform(-90, 90))
        got = T.affine_matrix(center, scale, rot, (288, 384), unbiased=unbiased)
        np.testing.assert_allclose(got, _official_affine(center, scale, rot, (288, 384), unbiased), atol=1e-9)


def test_box_to_center_scale_fixes_aspect_and_enlarges():
    center, scale = T.box_to_center_scale([100, 50, 60, 160], 0.75, 1.25)
    np.testing.assert_allclose(center, [130, 130])
    np.testing.assert_allclose(scale, [120 / 200 * 1.25, 160 / 200 * 1.25])
    _, scale = T.box_to_center_scale([0, 0, 300, 100], 0.75, 1.0)  # too wide: height grows
    np.testing.assert_allclose(scale, [1.5, 2.0])


def test_clean_box_clips_like_the_release():
    assert T.clean_box([-10, 5, 50, 20], 100, 100) == [0.0, 5.0, 49.0, 19.0]
    assert T.clean_box([10, 10, 0, 20], 100, 100) is None


def test_joint_lands_on_the_known_heatmap_peak_and_decodes_back():
    # unbiased: box 111 px wide around (100, 80) -> heatmap factor (12 - 1) / (111 - 1) = 0.1,
    # centre -> ((12 - 1) / 2, (16 - 1) / 2) = (5.5, 7.5); joint (+15, -25) px -> (7, 5).
    center, scale = T.box_to_center_scale([100 - 55.5, 80 - 74, 111, 148], 0.75, 1.0)
    to_hm = T.heatmap_matrix(center, scale, 0.0, (64, 48), (16, 12), "unbiased")
    joint = np.array([[115.0, 55.0]])
    hm = T.apply_affine(joint, to_hm)
    np.testing.assert_allclose(hm, [[7.0, 5.0]], atol=1e-9)
    target, weight = T.gaussian_targets(hm, np.array([True]), (16, 12), sigma=2.0)
    assert target.shape == (1, 16, 12) and weight.tolist() == [1.0]
    assert np.unravel_index(target[0].argmax(), (16, 12)) == (5, 7)
    assert target[0, 5, 7] == 1.0
    assert target[0, 5, 8] == pytest.approx(math.exp(-1 / 8))
    back = T.heatmap_to_image(np.array([[[7.0, 5.0]]]), center[None], scale[None], (16, 12), "unbiased")
    np.testing.assert_allclose(back[0], joint, atol=1e-3)
    back_t = T.heatmap_to_image(
        torch.tensor([[[7.0, 5.0]]]), torch.tensor(center[None]), torch.tensor(scale[None]), (16, 12), "unbiased"
    )
    assert isinstance(back_t, torch.Tensor)
    np.testing.assert_allclose(back_t.numpy()[0], joint, atol=1e-3)


def test_crop_puts_a_bright_pixel_where_the_matrix_says():
    # standard convention, 120 px box: input factor 48/120 = 0.4, centre (100, 80) -> (24, 32);
    # the pixel (120, 50) lands on input (32, 20) and heatmap (8, 5).
    image = np.zeros((200, 240, 3), np.uint8)
    image[50, 120] = (255, 200, 100)
    center, scale = np.array([100.0, 80.0]), np.array([120 / 200, 160 / 200])
    m = T.input_matrix(center, scale, 0.0, (64, 48), "standard")
    np.testing.assert_allclose(T.apply_affine([[120, 50]], m), [[32, 20]], atol=1e-9)
    crop = T.warp_image(image, m, (48, 64))
    assert crop.shape == (64, 48, 3)
    assert tuple(crop[20, 32]) == (255, 200, 100)
    assert np.unravel_index(crop[..., 0].argmax(), crop.shape[:2]) == (20, 32)
    hm = T.apply_affine([[120, 50]], T.heatmap_matrix(center, scale, 0.0, (64, 48), (16, 12), "standard"))
    np.testing.assert_allclose(hm, [[8, 5]], atol=1e-9)


@pytest.mark.parametrize("rotation", [0.0, 30.0])
def test_warp_samples_where_the_matrix_points(rotation):
    ys, xs = np.mgrid[0:120, 0:160].astype(np.float32)
    m = T.affine_matrix([80.0, 60.0], [0.3, 0.4], rotation, (24, 32))
    inv = T.invert_affine(m)
    oy, ox = np.mgrid[0:32, 0:24]
    src = T.apply_affine(np.stack([ox, oy], -1).reshape(-1, 2), inv).reshape(32, 24, 2)
    np.testing.assert_allclose(T.warp_image(xs, m, (24, 32)), src[..., 0], atol=2e-3)
    np.testing.assert_allclose(T.warp_image(ys, m, (24, 32)), src[..., 1], atol=2e-3)


def test_flip_swaps_left_and_right_and_mirrors():
    joints = np.zeros((17, 3))
    joints[0] = (50, 10, 1)  # nose
    joints[5] = (10, 20, 1)  # left shoulder
    joints[6] = (30, 20, 1)  # right shoulder
    joints[15] = (12, 90, 1)  # left ankle; the right ankle is not annotated
    out = T.flip_joints(joints, 100)
    np.testing.assert_allclose(out[0], (49, 10, 1))
    np.testing.assert_allclose(out[5], (69, 20, 1))  # the old right shoulder, mirrored
    np.testing.assert_allclose(out[6], (89, 20, 1))
    np.testing.assert_allclose(out[16], (87, 90, 1))
    np.testing.assert_allclose(out[15], (0, 0, 0))  # absent stays absent


def test_flip_matrix_equals_flipping_the_array():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    m = T.input_matrix([40.0, 30.0], [0.25, 0.3], 10.0, (32, 24))
    flipped_center = np.array([80 - 1 - 40.0, 30.0])
    m2 = T.input_matrix(flipped_center, [0.25, 0.3], 10.0, (32, 24))
    a = T.warp_image(np.ascontiguousarray(image[:, ::-1]), m2, (24, 32))
    b = T.warp_image(image, T.compose(m2, T.flip_matrix(80)), (24, 32))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert m.shape == (2, 3)


def test_official_convention_decodes_with_the_known_shift():
    center, scale = np.array([200.0, 150.0]), np.array([1.5, 2.0])  # 300 px wide
    to_hm = T.heatmap_matrix(center, scale, 0.0, (384, 288), (96, 72), "official")
    hm = T.apply_affine(center[None], to_hm)
    np.testing.assert_allclose(hm, [[143.5 / 4, 191.5 / 4]])
    back = T.apply_affine(hm, T.decode_matrix(center, scale, (96, 72), "official"))
    np.testing.assert_allclose(back - center, [[-0.125 * 300 / 72, -0.125 * 300 / 72]], atol=1e-9)
    for crop in ("unbiased", "standard"):  # consistent conventions round-trip exactly
        hm = T.apply_affine([[210.0, 140.0]], T.heatmap_matrix(center, scale, 0.0, (384, 288), (96, 72), crop))
        np.testing.assert_allclose(T.apply_affine(hm, T.decode_matrix(center, scale, (96, 72), crop)), [[210, 140]])


def test_targets_weights_for_invisible_and_outside_joints():
    joints = np.array([[3.0, 4.0], [5.0, 5.0], [-30.0, 4.0], [11.4, 15.4], [5.0, 16.2]])
    target, weight = T.gaussian_targets(
        joints, np.array([True, False, True, True, True]), (16, 12), sigma=1.0, joint_weights=[1.0, 1.0, 1.0, 1.5, 1.0]
    )
    assert weight.tolist() == [1.0, 0.0, 0.0, 1.5, 1.0]
    assert target[1].max() == 0 and target[2].max() == 0
    assert target[3, 15, 11] == 1.0  # rounded to the nearest pixel
    # a peak just outside keeps its weight and the visible part of its Gaussian (as officially)
    assert target[4, 15, 5] == pytest.approx(math.exp(-0.5))
    assert target.dtype == np.float32


def test_normalize_is_imagenet():
    img = np.full((2, 4, 5, 3), 255, np.uint8)
    x = T.normalize(img)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.float32
    np.testing.assert_allclose(
        x[0, :, 0, 0].numpy(), [(1 - m) / s for m, s in zip(T.IMAGENET_MEAN, T.IMAGENET_STD)], rtol=1e-6
    )


def test_unknown_crop_convention():
    msg = r"^unknown crop convention 'dark'; choose from: unbiased, standard, official$"
    with pytest.raises(ConfigError, match=msg):
        T.input_matrix([0, 0], [1, 1], 0, (64, 48), "dark")
