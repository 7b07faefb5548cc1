"""Person boxes for every frame: torchvision's Faster R-CNN, a detections file, the full frame, or
the ground truth.

A box source is called with ``(frame index, frame)`` and returns :class:`Detections`. Sources:

* :class:`TorchvisionDetector` — torchvision's COCO Faster R-CNN (``fasterrcnn_resnet50_fpn_v2``,
  or ``fasterrcnn_mobilenet_v3_large_fpn`` for CPUs) through its weights API, person class only.
  Its weights live in the torch hub cache; offline, the error names the file to put there.
* :class:`FileBoxes` — a COCO-style detections JSON (``[{image_id, bbox: [x, y, w, h], score,
  category_id}]``, the format of DCPose's ``val_boxes.json`` and mmpose's
  ``posetrack18_val_human_detections.json``), a PoseTrack18 file (its ``images`` and
  ``annotations``), or entries keyed by ``frame_index``. See :class:`BoxFile` for how image ids
  are mapped to frames, and how a file for another video is refused.
* :class:`FullFrame` — one box covering the frame (a single, centred person).
* :class:`GroundTruthBoxes` — the annotated persons of a PoseTrack sequence, with their track ids.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from famicli.errors import CheckpointError, ConfigError
from famicli.formats.boxes import FILE_THRESHOLD, BoxFile, Detections, FileBoxes  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

# --detector name -> (torchvision builder, its weights enum)
DETECTORS = {
    "torchvision": ("fasterrcnn_resnet50_fpn_v2", "FasterRCNN_ResNet50_FPN_V2_Weights"),
    "torchvision-mobilenet": ("fasterrcnn_mobilenet_v3_large_fpn", "FasterRCNN_MobileNet_V3_Large_FPN_Weights"),
}
DETECTOR_THRESHOLD = 0.5  # default person score threshold of the detectors


class FullFrame:
    """One box covering the whole frame, score 1."""

    description = {"source": "full-frame"}

    def __call__(self, index: int, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        return Detections(np.array([[0.0, 0.0, float(w), float(h)]]), np.ones(1))


class GroundTruthBoxes:
    """The annotated persons of a :class:`famicli.data.posetrack.Video` on its labeled frames.

    Persons are kept as the training/validation dataset keeps them: a labeled frame, some
    annotated keypoint and a box of positive size. Boxes carry the ground truth's track ids.
    """

    def __init__(self, video):
        self.by_frame: dict[int, list] = {}
        for p in video.persons:
            if video.labeled[p.position] and p.keypoints.max() > 0 and (p.bbox[2:] > 0).all():
                self.by_frame.setdefault(p.position, []).append(p)
        self.description = {"source": "ground truth", "path": str(video.path)}

    def frames(self) -> set[int]:
        return set(self.by_frame)

    def __call__(self, index: int, frame) -> Detections:
        people = self.by_frame.get(index, [])
        if not people:
            return Detections.empty()
        return Detections(
            np.array([p.bbox for p in people], dtype=float),
            np.ones(len(people)),
            np.array([p.track_id for p in people], dtype=np.int64),
        )


class TorchvisionDetector:
    """torchvision's COCO Faster R-CNN keeping class 1 (person) boxes scoring >= ``threshold``.

    Args:
        name: a key of :data:`DETECTORS`.
        device: torch device.
        threshold: minimum person score.
        model: an already built detector (tests); its output format must be torchvision's.

    Raises:
        CheckpointError: the weights are not in the torch hub cache and cannot be downloaded;
            the message names the file and where to put it.
    """

    def __init__(self, name: str = "torchvision", device="cpu", threshold: float = DETECTOR_THRESHOLD, model=None):
        import torch

        if name not in DETECTORS:
            raise ConfigError(f"unknown detector {name!r}; choose from: {', '.join([*DETECTORS, 'full-frame'])}")
        self.device, self.threshold = torch.device(device), float(threshold)
        builder, weights_name = DETECTORS[name]
        self.description = {"source": "detector", "detector": name, "model": builder, "threshold": self.threshold}
        if model is None:
            import torchvision.models.detection as det

            weights = getattr(det, weights_name).COCO_V1
            state = _load_weights(weights)  # before building: offline, fail fast
            model = getattr(det, builder)(weights=None, weights_backbone=None, num_classes=91)
            model.load_state_dict(state)
            self.description["weights"] = weights.url.rsplit("/", 1)[-1]
        self.model = model.to(self.device).eval()

    def __call__(self, index: int, frame: np.ndarray) -> Detections:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device)
        x = x.permute(2, 0, 1).float() / 255  # (H, W, 3) -> (3, H, W)
        with torch.no_grad():
            out = self.model([x])[0]
        keep = (out["labels"] == 1) & (out["scores"] >= self.threshold)
        xyxy = out["boxes"][keep].float().cpu().numpy().reshape(-1, 4)
        boxes = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)  # (N, 4) x1y1x2y2 -> xywh
        return Detections(boxes, out["scores"][keep].float().cpu().numpy())


def _load_weights(weights) -> dict:
    """The state dict of a torchvision weights enum from the hub cache, downloading it if possible."""
    import torch

    file = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    if not file.is_file():
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(weights.url, str(file), progress=False)
        except Exception as exc:  # offline: URLError, socket errors, HTTP errors
            reason = " ".join(str(exc).split())[:120] or type(exc).__name__
            raise CheckpointError(
                f"detector weights {file.name} are not in the torch hub cache and could not be "
                f"downloaded ({reason}); download {weights.url} and put it at {file} (or set "
                "TORCH_HOME), or pass --boxes FILE or --detector full-frame"
            ) from None
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{file}: cannot read the detector weights ({type(exc).__name__}); delete it "
            f"and download {weights.url} again"
        ) from None


def box_source(detector: str | None, boxes: str | Path | None, threshold: float | None, device):
    """The box source of ``famipose predict``: a :class:`BoxFile` (``boxes``), :class:`FullFrame` or a
    :class:`TorchvisionDetector`. Returns the :class:`BoxFile` itself for a file (call ``for_video``)."""
    if boxes is not None:
        if detector not in (None, "file"):
            raise ConfigError(f"--boxes and --detector {detector} exclude each other; give one")
        return BoxFile(boxes, FILE_THRESHOLD if threshold is None else threshold)
    detector = detector or "torchvision"
    if detector == "full-frame":
        return FullFrame()
    if detector not in DETECTORS:
        raise ConfigError(f"unknown detector {detector!r}; choose from: {', '.join([*DETECTORS, 'full-frame'])}")
    return TorchvisionDetector(detector, device, DETECTOR_THRESHOLD if threshold is None else threshold)
