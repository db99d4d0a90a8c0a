"""The 256x256 face crop the networks were trained on: its landmark template and its geometry.

The crop is the official one: a least-squares similarity transform (scale, rotation, translation)
that puts the 68-point landmarks 0-46 of a face (edtalk.face_align finds them) on a template.
Transforms are 3x3 matrices mapping crop coordinates (x, y) to image coordinates; `warp` samples
a crop, `smooth_transforms` turns transforms found on some frames of a video into one per frame.
"""

import functools
from pathlib import Path

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

CROP_SIZE = 256
TEMPLATE_PATH = Path(__file__).resolve().parent / "assets" / "face_template_68.npy"
FIT_POINTS = slice(0, 47)  # jaw, brows, nose and eyes (as the official crop)


@functools.lru_cache(maxsize=1)
def face_template() -> np.ndarray:
    """(68, 2) float landmark positions (x, y) in the 256x256 crop; see make_face_template.py."""
    return np.load(TEMPLATE_PATH)


def template_width() -> float:
    """Distance between the template's outer landmarks (0 and 16) in the crop: ~134 px."""
    t = face_template()
    return float(np.linalg.norm(t[16] - t[0]))


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
