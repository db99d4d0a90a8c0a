"""M-LMD and F-LMD: mean distance between the dlib 68 landmarks of generated and reference frames.

As in the papers that report them (Chen et al. 2019, ATVGnet, and the talking-head works after
it), distances are measured on aligned faces: each clip's landmarks are mapped by one similarity
transform (from the clip's mean landmarks onto our 256x256 face template, edtalk.crop_geometry)
into the template's frame, so the numbers are in pixels of a 256x256 crop whatever the video's
resolution, while the head and mouth motion inside the clip is kept. For clips that are already
256x256 aligned crops (our renders) the transform is close to the identity.
"""

import numpy as np

from edtalk.crop_geometry import similarity_transform

MOUTH = slice(48, 68)  # dlib points 49-68: outer and inner lip contours


def align_clip(landmarks: np.ndarray) -> np.ndarray:
    """(T, 68, 2) landmarks (x, y) of one clip (NaN rows where no face) -> the same in template pixels."""
    valid = ~np.isnan(landmarks).any(axis=(1, 2))
    if not valid.any():
        return landmarks
    to_crop = np.linalg.inv(similarity_transform(landmarks[valid].mean(axis=0)))  # (3, 3) image -> crop
    return landmarks @ to_crop[:2, :2].T + to_crop[:2, 2]


def landmark_distance(generated: np.ndarray, reference: np.ndarray, points: slice = slice(None)) -> float:
    """Mean over frames and points of the Euclidean distance between (T, 68, 2) landmark arrays.

    Frames where either side has no face (NaN) are left out; NaN if none is left.
    """
    distances = np.linalg.norm(generated[:, points] - reference[:, points], axis=-1)  # (T, P)
    per_frame = distances.mean(axis=1)
    per_frame = per_frame[~np.isnan(per_frame)]
    return float(per_frame.mean()) if len(per_frame) else float("nan")


def lmd(generated: np.ndarray, reference: np.ndarray, align: bool = True) -> dict[str, float]:
    """{'M-LMD', 'F-LMD'} of two (T, 68, 2) landmark tracks, each clip aligned first unless `align` is False."""
    if align:
        generated, reference = align_clip(generated), align_clip(reference)
    return {
        "M-LMD": landmark_distance(generated, reference, MOUTH),
        "F-LMD": landmark_distance(generated, reference),
    }
