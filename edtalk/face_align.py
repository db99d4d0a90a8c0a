"""Face detection, alignment to the 256x256 crop the networks were trained on, and paste-back.

The crop is the official one: dlib's HOG detector, its 68-point landmarks, and a least-squares
similarity transform (scale, rotation, translation) that puts landmarks 0-46 on a template.
Transforms are 3x3 matrices mapping crop coordinates (x, y) to image coordinates.
"""

import functools
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

from .errors import EDTalkError

log = logging.getLogger(__name__)

CROP_SIZE = 256
TEMPLATE_PATH = Path(__file__).resolve().parent / "assets" / "face_template_68.npy"
FIT_POINTS = slice(0, 47)  # jaw, brows, nose and eyes (as the official crop)


class NoFaceError(EDTalkError):
    """No face was found in an image or video."""


@functools.lru_cache(maxsize=1)
def face_template() -> np.ndarray:
    """(68, 2) float landmark positions (x, y) in the 256x256 crop; see make_face_template.py."""
    return np.load(TEMPLATE_PATH)


def similarity_transform(landmarks: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
    """Least-squares similarity (Umeyama) from template points to detected landmarks: (3, 3), crop -> image."""
    template = face_template() if template is None else template
    tform = SimilarityTransform.from_estimate(template[FIT_POINTS], np.asarray(landmarks, float)[FIT_POINTS])
    return np.asarray(tform.params, dtype=np.float64)


def warp(image: np.ndarray, matrix: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Sample the (size, size) crop described by `matrix` from an (H, W, 3) uint8 image (bilinear, black outside)."""
    return cv2.warpAffine(
        image, matrix[:2], (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT
    )


def matrix_params(matrix: np.ndarray) -> np.ndarray:
    """(log scale, angle, tx, ty) of a similarity matrix: a space where averaging is meaningful."""
    a, b = matrix[0, 0], matrix[1, 0]
    return np.array([np.log(np.hypot(a, b)), np.arctan2(b, a), matrix[0, 2], matrix[1, 2]])


def params_matrix(params: np.ndarray) -> np.ndarray:
    log_scale, angle, tx, ty = params
    s = np.exp(log_scale)
    c, n = s * np.cos(angle), s * np.sin(angle)
    return np.array([[c, -n, tx], [n, c, ty], [0.0, 0.0, 1.0]])


def smooth_transforms(sampled: dict[int, np.ndarray], num_frames: int, sigma: float | None) -> list[np.ndarray]:
    """Per-frame crop matrices from matrices found on some frames.

    sigma=None: one stable crop for the whole clip (the median of the sampled transforms), so the
    head keeps its motion inside the crop, as the official fixed-box crop does. Otherwise the
    transforms are interpolated between sampled frames and smoothed with a Gaussian of `sigma`
    frames (for re-dubbing a long video whose subject moves around).
    """
    indices = np.array(sorted(sampled))
    params = np.stack([matrix_params(sampled[i]) for i in indices])
    params[:, 1] = np.unwrap(params[:, 1])
    if sigma is None:
        return [params_matrix(np.median(params, axis=0))] * num_frames
    frames = np.arange(num_frames)
    track = np.stack([np.interp(frames, indices, params[:, k]) for k in range(4)], axis=1)
    if sigma > 0 and num_frames > 1:
        from scipy.ndimage import gaussian_filter1d

        track = gaussian_filter1d(track, sigma, axis=0, mode="nearest")
    return [params_matrix(p) for p in track]


@functools.lru_cache(maxsize=4)
def feather_mask(size: int = CROP_SIZE, margin: float = 0.06, feather: float = 0.05) -> np.ndarray:
    """(size, size) float32 blend weights: 1 inside the crop, falling smoothly to 0 near its border."""
    m = int(round(margin * size))
    mask = np.zeros((size, size), np.float32)
    mask[m : size - m, m : size - m] = 1.0
    sigma = feather * size
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma)


def paste_back(frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Blend an animated (S, S, 3) crop back into its (H, W, 3) uint8 frame with a feathered edge."""
    size = crop.shape[0]
    h, w = frame.shape[:2]
    corners = matrix[:2] @ np.array([[0, size, 0, size], [0, 0, size, size], [1, 1, 1, 1]], float)
    x0, y0 = np.clip(np.floor(corners.min(axis=1)).astype(int), 0, [w, h])
    x1, y1 = np.clip(np.ceil(corners.max(axis=1)).astype(int) + 1, 0, [w, h])
    if x1 <= x0 or y1 <= y0:
        return frame
    shifted = matrix[:2].copy()
    shifted[:, 2] -= (x0, y0)
    roi = (x1 - x0, y1 - y0)
    face = cv2.warpAffine(crop, shifted, roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    weight = cv2.warpAffine(feather_mask(size), shifted, roi, flags=cv2.INTER_LINEAR)[..., None]
    out = frame.copy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region + weight * (face.astype(np.float32) - region) + 0.5, 0, 255).astype(np.uint8)
    return out


@dataclass
class AlignedFace:
    """crop: (256, 256, 3) uint8; matrix: crop -> image (3, 3); faces: how many faces were found."""

    crop: np.ndarray
    matrix: np.ndarray
    faces: int


class FaceAligner:
    """dlib HOG face detector + 68-point landmark predictor, loaded on first use.

    The models come from the `dlib-bin` and `face_recognition_models` packages (offline).
    Detection runs on a copy whose longer side is at most `detect_max_side` pixels; landmarks are
    predicted on the full-resolution image.
    """

    def __init__(self, detect_max_side: int = 640):
        self.detect_max_side = detect_max_side
        self._detector = self._predictor = None

    def _models(self):
        if self._detector is None:
            import dlib

            spec = importlib.util.find_spec("face_recognition_models")
            if spec is None:
                raise EDTalkError(
                    "face alignment needs the face_recognition_models package (pip install -r requirements.txt)"
                )
            path = Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
            self._detector = dlib.get_frontal_face_detector()
            self._predictor = dlib.shape_predictor(str(path))
        return self._detector, self._predictor

    def boxes(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (x0, y0, x1, y1) in an (H, W, 3) uint8 RGB image, largest first."""
        detector, _ = self._models()
        scale = min(1.0, self.detect_max_side / max(image.shape[:2]))
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        upsample = 1 if max(small.shape[:2]) <= 512 else 0
        found = sorted(detector(np.ascontiguousarray(small), upsample), key=lambda r: -r.area())
        return [
            (int(r.left() / scale), int(r.top() / scale), int(r.right() / scale), int(r.bottom() / scale))
            for r in found
        ]

    def shape(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """(68, 2) landmarks (x, y) of the face in `box` (x0, y0, x1, y1)."""
        import dlib

        _, predictor = self._models()
        parts = predictor(np.ascontiguousarray(image), dlib.rectangle(*(int(round(v)) for v in box))).parts()
        return np.array([[p.x, p.y] for p in parts], dtype=np.float64)

    def landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        """(68, 2) landmarks of every face in an (H, W, 3) uint8 RGB image, largest face first."""
        return [self.shape(image, box) for box in self.boxes(image)]

    def align(self, image: np.ndarray, name: str = "image") -> AlignedFace:
        """Crop the largest face of an image to 256x256; raises NoFaceError naming `name`."""
        faces = self.landmarks(image)
        if not faces:
            raise NoFaceError(f"no face found in {name}")
        if len(faces) > 1:
            log.warning("found %d faces in %s; using the largest", len(faces), name)
        matrix = similarity_transform(faces[0])
        return AlignedFace(crop=warp(image, matrix), matrix=matrix, faces=len(faces))
