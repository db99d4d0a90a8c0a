"""M-LMD and F-LMD: mean distance between the dlib 68 landmarks of generated and reference frames.

As in the papers that report them (Chen et al. 2019, ATVGnet, and the talking-head works after
it), distances are measured on aligned faces. One similarity transform, found from the reference
clip's mean landmarks onto our 256x256 face template (edtalk.crop_geometry), maps both clips'
landmarks into the template's frame: the numbers are in pixels of a 256x256 crop whatever the
video's resolution, the head and mouth motion inside the clip is kept, and a generated face placed
wrongly throughout (shifted, scaled) still counts. Both clips must be in the same pixel frame (the
runner resizes generated frames to the reference size first). For clips that are already 256x256
aligned crops (our renders) the transform is close to the identity.
"""

import numpy as np

from edtalk.crop_geometry import similarity_transform

MOUTH = slice(48, 68)  # dlib points 49-68: outer and inner lip contours


def reference_alignment(reference: np.ndarray) -> np.ndarray:
    """(T, 68, 2) reference landmarks (x, y; NaN rows where no face) -> (3, 3) image -> template transform
    (the identity when no frame has a face)."""
    valid = ~np.isnan(reference).any(axis=(1, 2))
    if not valid.any():
        return np.eye(3)
    return np.linalg.inv(similarity_transform(reference[valid].mean(axis=0)))


def apply_transform(matrix: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(3, 3) similarity and (..., 2) points (x, y) -> the mapped points (..., 2)."""
    return landmarks @ matrix[:2, :2].T + matrix[:2, 2]


def landmark_distance(generated: np.ndarray, reference: np.ndarray, points: slice = slice(None)) -> float:
    """Mean over frames and points of the Euclidean distance between (T, 68, 2) landmark arrays.

    Frames where either side has no face (NaN) are left out; NaN if none is left.
    """
    distances = np.linalg.norm(generated[:, points] - reference[:, points], axis=-1)  # (T, P)
    per_frame = distances.mean(axis=1)
    per_frame = per_frame[~np.isnan(per_frame)]
    return float(per_frame.mean()) if len(per_frame) else float("nan")


def lmd(generated: np.ndarray, reference: np.ndarray, align: bool = True) -> dict[str, float]:
    """{'M-LMD', 'F-LMD'} of two (T, 68, 2) landmark tracks in the same pixel frame; unless `align` is
    False, both are first mapped by the reference clip's alignment (`reference_alignment`)."""
    if align:
        to_template = reference_alignment(reference)
        generated, reference = apply_transform(to_template, generated), apply_transform(to_template, reference)
    return {
        "M-LMD": landmark_distance(generated, reference, MOUTH),
        "F-LMD": landmark_distance(generated, reference),
    }
