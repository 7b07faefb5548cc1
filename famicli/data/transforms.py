"""Geometry of crops and targets: box -> center/scale, affine matrices, warps, flips, Gaussian targets.

Conventions (all as the official FAMI-Pose/HRNet code, ``pixel_std`` = 200):

* A person box ``[x, y, w, h]`` becomes ``center`` (box centre) and ``scale`` = (w, h) / 200 after
  widening or heightening the box to the crop's aspect ratio (w/h = 0.75), times 1.25.
* Sizes are written (H, W) when they come from the model config and (w, h) in matrix helpers; points
  are (x, y) in pixel-index coordinates (pixel centres at integers, as cv2 and the official code).
* Affine conventions (``DataConfig.crop``): ``"unbiased"`` maps the box centre to ((W-1)/2, (H-1)/2)
  with factor (W-1)/(src_w-1) for crops, targets *and* decoding (targets and decoding use the same map
  at heatmap resolution, so they are exact inverses); ``"standard"`` is HRNet's centre -> (W/2, H/2),
  factor W/src_w everywhere; ``"official"`` reproduces the release's mismatch: unbiased crops,
  targets at input / stride, decoding with the standard map (about -0.125 heatmap px off).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from famicli.errors import ConfigError
from famicli.keypoints import FLIP_PAIRS

PIXEL_STD = 200.0  # the official scale unit: scale = box size / 200
CROP_CONVENTIONS = ("unbiased", "standard", "official")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)
# The official per-joint loss weights (elbows/knees 1.2, wrists/ankles 1.5); the official configs
# leave them off (USE_DIFFERENT_JOINTS_WEIGHT false), so targets are weighted by visibility only.
JOINT_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5)
UPPER_BODY = tuple(range(11))  # nose .. right_wrist: the half-body crop's upper half


def _check_convention(crop: str) -> None:
    if crop not in CROP_CONVENTIONS:
        raise ConfigError(f"unknown crop convention {crop!r}; choose from: {', '.join(CROP_CONVENTIONS)}")


def box_to_center_scale(
    box: Sequence[float], aspect_ratio: float = 0.75, enlarge: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """``[x, y, w, h]`` -> (center (2,), scale (2,)): aspect fixed to ``aspect_ratio``, then x ``enlarge``."""
    x, y, w, h = (float(v) for v in box[:4])
    center = np.array([x + w * 0.5, y + h * 0.5])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) / PIXEL_STD * enlarge


def clean_box(box: Sequence[float], width: int, height: int) -> list[float] | None:
    """The official box sanitation: clip ``[x, y, w, h]`` into the image; None if nothing is left."""
    x, y, w, h = (float(v) for v in box[:4])
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if w * h <= 0 or x2 < x1 or y2 < y1:
        return None
    return [x1, y1, x2 - x1, y2 - y1]


def affine_matrix(
    center: Sequence[float],
    scale: Sequence[float],
    rotation: float,
    output_size: tuple[int, int],
    unbiased: bool = True,
) -> np.ndarray:
    """The 2x3 matrix mapping image points into an output of ``output_size`` = (w, h).

    The box of ``scale * 200`` px around ``center``, rotated by ``rotation`` degrees (counter-
    clockwise on screen), fills the output. ``unbiased`` selects the unbiased convention (centre ->
    ((w-1)/2, (h-1)/2), factor (w-1)/(src_w-1)); else the standard one (centre -> (w/2, h/2), factor
    w/src_w). Equal to the official ``get_affine_transform`` / ``dark_get_affine_transform``.
    """
    out_w, out_h = output_size
    src_w = float(scale[0]) * PIXEL_STD
    if unbiased:
        factor, dst = (out_w - 1) / (src_w - 1), ((out_w - 1) / 2, (out_h - 1) / 2)
    else:
        factor, dst = out_w / src_w, (out_w / 2, out_h / 2)
    r = math.radians(rotation)
    cs, sn = math.cos(r), math.sin(r)
    # x_out = factor * R(-rotation) (x - center) + dst
    lin = factor * np.array([[cs, sn], [-sn, cs]])
    shift = np.asarray(dst, dtype=float) - lin @ np.asarray(center, dtype=float)
    return np.concatenate([lin, shift[:, None]], axis=1)  # (2, 2) + (2, 1) -> (2, 3)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])  # (2, 3) -> (3, 3)
    return np.linalg.inv(full)[:2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of ``outer`` applied after ``inner``."""
    lin = outer[:, :2] @ inner[:, :2]
    shift = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return np.concatenate([lin, shift[:, None]], axis=1)  # (2, 2) + (2, 1) -> (2, 3)


def flip_matrix(width: int) -> np.ndarray:
    """The 2x3 matrix of a horizontal flip of an image ``width`` pixels wide: x -> width - 1 - x."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Points (..., 2) mapped by a 2x3 matrix -> (..., 2)."""
    points = np.asarray(points, dtype=float)
    return points @ matrix[:, :2].T + matrix[:, 2]


def input_matrix(center, scale, rotation: float, input_size: tuple[int, int], crop: str = "unbiased") -> np.ndarray:
    """Image -> model input (``input_size`` = (H, W)): unbiased except with ``crop="standard"``."""
    _check_convention(crop)
    return affine_matrix(center, scale, rotation, (input_size[1], input_size[0]), unbiased=crop != "standard")


def heatmap_matrix(
    center,
    scale,
    rotation: float,
    input_size: tuple[int, int],
    heatmap_size: tuple[int, int],
    crop: str = "unbiased",
) -> np.ndarray:
    """Image -> heatmap pixels, the map Gaussian targets are placed with (sizes are (H, W)).

    ``"unbiased"``/``"standard"``: the crop's map at heatmap resolution (the inverse of decoding);
    ``"official"``: the unbiased input map divided by the stride input/heatmap, as the release does.
    """
    _check_convention(crop)
    if crop == "official":
        stride = np.array([input_size[1] / heatmap_size[1], input_size[0] / heatmap_size[0]])
        return input_matrix(center, scale, rotation, input_size, "unbiased") / stride[:, None]
    return affine_matrix(center, scale, rotation, (heatmap_size[1], heatmap_size[0]), unbiased=crop == "unbiased")


def decode_matrix(
    center, scale, heatmap_size: tuple[int, int], crop: str = "unbiased", rotation: float = 0.0
) -> np.ndarray:
    """Heatmap pixels -> image (``heatmap_size`` = (h, w)); ``"official"`` decodes with the standard map."""
    _check_convention(crop)
    fwd = affine_matrix(center, scale, rotation, (heatmap_size[1], heatmap_size[0]), unbiased=crop == "unbiased")
    return invert_affine(fwd)


def heatmap_to_image(coords, center, scale, heatmap_size: tuple[int, int], crop: str = "unbiased"):
    """Decode heatmap coordinates to image coordinates, batched.

    Args:
        coords: (B, K, 2) (x, y) in heatmap pixels (numpy array or torch tensor).
        center, scale: (B, 2) each, the crops' ``meta["center"]`` and ``meta["scale"]``.
        heatmap_size: (h, w).
        crop: the affine convention the crops were made with.

    Returns:
        (B, K, 2) image coordinates, of the same type as ``coords``.
    """
    is_torch = hasattr(coords, "detach")
    arr = coords.detach().cpu().double().numpy() if is_torch else np.asarray(coords, dtype=float)
    c = np.asarray(center.detach().cpu() if hasattr(center, "detach") else center, dtype=float).reshape(-1, 2)
    s = np.asarray(scale.detach().cpu() if hasattr(scale, "detach") else scale, dtype=float).reshape(-1, 2)
    out = np.stack([apply_affine(arr[b], decode_matrix(c[b], s[b], heatmap_size, crop)) for b in range(len(arr))])
    if is_torch:
        import torch

        return torch.from_numpy(out).to(coords.dtype)
    return out


def warp_image(image: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Bilinear warp like ``cv2.warpAffine(image, matrix, (w, h))`` with zero borders.

    Args:
        image: (H, W, 3) uint8 or (H, W) float32.
        matrix: 2x3, image -> output.
        output_size: (w, h).

    Returns:
        (h, w, 3) uint8 or (h, w) float32.
    """
    from PIL import Image

    inv = invert_affine(matrix)  # output index -> image index
    # PIL samples the input at inv * (x + 0.5, y + 0.5) - 0.5: shift so that index maps to index.
    shift = inv[:, 2] + 0.5 - inv[:, :2] @ np.array([0.5, 0.5])
    coeffs = (inv[0, 0], inv[0, 1], shift[0], inv[1, 0], inv[1, 1], shift[1])
    mode = "F" if image.dtype == np.float32 else None
    pil = Image.fromarray(image, mode=mode) if mode else Image.fromarray(image)
    out = pil.transform(tuple(output_size), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    return np.asarray(out)


def flip_joints(joints: np.ndarray, width: int, pairs: Sequence[tuple[int, int]] = FLIP_PAIRS) -> np.ndarray:
    """Mirror joints (K, 3) = (x, y, v) in an image ``width`` wide and swap left/right: (K, 3)."""
    out = np.array(joints, dtype=float, copy=True)
    out[:, 0] = width - 1 - out[:, 0]
    for a, b in pairs:
        out[[a, b]] = out[[b, a]]
    out[out[:, 2] <= 0] = 0.0  # absent joints stay (0, 0, 0), as the official joints * joints_vis
    return out


def gaussian_targets(
    joints: np.ndarray,
    visible: np.ndarray,
    heatmap_size: tuple[int, int],
    sigma: float,
    joint_weights: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Official Gaussian heatmap targets.

    Each visible joint gets an unnormalized Gaussian (peak 1, std ``sigma``) centred on its position
    rounded to the nearest heatmap pixel, cut at 3 sigma; a joint whose window lies entirely outside
    the heatmap gets weight 0.

    Args:
        joints: (K, 2) positions in heatmap pixels.
        visible: (K,) bool.
        heatmap_size: (h, w).
        sigma: Gaussian std in heatmap pixels.
        joint_weights: optional (K,) factors multiplied into the weights.

    Returns:
        target (K, h, w) float32 and weight (K,) float32 (1 visible, 0 not, times ``joint_weights``).
    """
    h, w = heatmap_size
    k = len(joints)
    target = np.zeros((k, h, w), dtype=np.float32)
    weight = np.asarray(visible, dtype=np.float32).reshape(k).copy()
    tmp = sigma * 3
    size = 2 * tmp + 1
    g_axis = np.arange(0, size, 1, np.float32)
    c0 = size // 2
    g = np.exp(-((g_axis[None, :] - c0) ** 2 + (g_axis[:, None] - c0) ** 2) / (2 * sigma**2))  # (size, size)
    for j in range(k):
        if weight[j] <= 0:
            continue
        mu_x, mu_y = int(joints[j][0] + 0.5), int(joints[j][1] + 0.5)
        ul = (int(mu_x - tmp), int(mu_y - tmp))
        br = (int(mu_x + tmp + 1), int(mu_y + tmp + 1))
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weight[j] = 0.0
            continue
        gx = (max(0, -ul[0]), min(br[0], w) - ul[0])
        gy = (max(0, -ul[1]), min(br[1], h) - ul[1])
        ix = (max(0, ul[0]), min(br[0], w))
        iy = (max(0, ul[1]), min(br[1], h))
        target[j, iy[0] : iy[1], ix[0] : ix[1]] = g[gy[0] : gy[1], gx[0] : gx[1]]
    if joint_weights is not None:
        weight = weight * np.asarray(joint_weights, dtype=np.float32)
    return target, weight


def normalize(images: np.ndarray):
    """uint8 RGB (..., H, W, 3) -> float tensor (..., 3, H, W) normalized with ImageNet mean/std."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    x = x.movedim(-1, -3)  # (..., H, W, 3) -> (..., 3, H, W)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x - mean) / std).contiguous()


@dataclass(frozen=True)
class WindowTransform:
    """One crop for all frames of a window: where, how large, rotated, mirrored."""

    center: np.ndarray  # (2,) crop centre in the (mirrored, when flipped) image
    scale: np.ndarray  # (2,) crop size / 200
    rotation: float  # degrees, counter-clockwise on screen
    flipped: bool  # the image is mirrored (x -> W-1-x) before cropping, joints swapped left/right
    half_body: bool  # the crop was replaced by a half-body crop


def half_body_box(
    joints: np.ndarray, visible: np.ndarray, rng: np.random.Generator, aspect_ratio: float, enlarge: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The official half-body crop: upper or lower visible joints -> (center, scale), or None.

    The upper half is chosen when ``rng.standard_normal() < 0.5`` (the release draws a normal, not a
    uniform number: upper ~69 % of the time) and it has more than two joints.
    """
    upper = [joints[j, :2] for j in range(len(joints)) if visible[j] and j in UPPER_BODY]
    lower = [joints[j, :2] for j in range(len(joints)) if visible[j] and j not in UPPER_BODY]
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        chosen = upper
    else:
        chosen = lower if len(lower) > 2 else upper
    if len(chosen) < 2:
        return None
    pts = np.asarray(chosen, dtype=float)  # (n, 2)
    center = pts.mean(axis=0)
    w, h = pts.max(axis=0) - pts.min(axis=0)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) / PIXEL_STD * enlarge


def draw_window_transform(
    rng: np.random.Generator | None,
    joints: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    image_width: int,
    cfg,
) -> WindowTransform:
    """Draw the training augmentation of one window (``rng=None``: no augmentation).

    Order and distributions of the official code: half-body (p ``cfg.half_body_prob`` when more than
    ``cfg.half_body_min_joints`` joints are visible), scale x clip(1 + f N, 1 - f, 1 + f), rotation
    clip(r N, -2r, 2r) with p ``cfg.rotation_prob``, horizontal flip with p ``cfg.flip_prob``.

    Args:
        joints: (K, 3) (x, y, v) in image coordinates.
        center, scale: (2,) the key-frame box's crop.
        image_width: width of the frames (the flip mirrors the centre with it).
        cfg: a :class:`famicli.config.DataConfig`.
    """
    center, scale = np.array(center, dtype=float), np.array(scale, dtype=float)
    if rng is None:
        return WindowTransform(center, scale, 0.0, False, False)
    visible = joints[:, 2] > 0
    half = False
    if visible.sum() > cfg.half_body_min_joints and rng.random() < cfg.half_body_prob:
        box = half_body_box(joints, visible, rng, cfg.aspect_ratio, cfg.half_body_enlarge)
        if box is not None:
            center, scale, half = box[0], box[1], True
    sf, rf = cfg.scale_factor, cfg.rotation_factor
    scale = scale * float(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))
    rotation = 0.0
    if rng.random() < cfg.rotation_prob:
        rotation = float(np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf))
    flipped = bool(rng.random() < cfg.flip_prob)
    if flipped:
        center = center.copy()
        center[0] = image_width - 1 - center[0]
    return WindowTransform(center, scale, rotation, flipped, half)
