"""Paste-back with the landmark face mask (edtalk.face_paste.paste_back / face_mask).

What is asserted: the mask covers the template's jaw and brow landmarks (0-26) with full weight
and falls to exactly 0 before the crop's border; the blended frame equals the original exactly
outside the warped mask's support and equals the rendered crop warped into place (within 2
levels) where the mask is 1; with a constant colour difference the seam has no step larger than
the feather allows (1.5 x difference / ramp width in frame pixels, + 2 levels of rounding) along
lines crossing it; the same holds with a rotated and scaled matrix, a face cut by the frame's
edge, and the aligned-face mask of edtalk.face_sr.
"""

import cv2
import numpy as np
import pytest

from edtalk.crop_geometry import CROP_SIZE, face_template, params_matrix, warp
from edtalk.face_paste import MASK_DILATE, MASK_FEATHER, face_mask, face_polygon, paste_back

H, W = 540, 960


def _matrix(scale: float, angle: float = 0.0, centre=(480.0, 270.0)) -> np.ndarray:
    """crop -> frame: the crop's centre at `centre`, scaled and rotated."""
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    tx = centre[0] - (c * 128 - s * 128)
    ty = centre[1] - (s * 128 + c * 128)
    return params_matrix(np.array([np.log(scale), angle, tx, ty]))


def _frame_mask(matrix: np.ndarray, shape=(H, W)) -> np.ndarray:
    return cv2.warpAffine(face_mask(), matrix[:2], (shape[1], shape[0]), flags=cv2.INTER_LINEAR)


def _noise(shape, seed) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _smooth(shape, seed) -> np.ndarray:
    """Textured but smooth: two warps of it that differ by OpenCV's 1/32 px rounding agree within a level."""
    return cv2.GaussianBlur(_noise(shape, seed), (0, 0), 2.0)


def _ramp_px(matrix: np.ndarray) -> float:
    """Width of the mask's feather in frame pixels."""
    t = face_template()
    return MASK_FEATHER * float(np.linalg.norm(t[16] - t[0])) * float(np.hypot(matrix[0, 0], matrix[1, 0]))


def test_mask_covers_the_jaw_and_brows_and_stays_inside_the_crop():
    mask = face_mask()
    assert mask.shape == (CROP_SIZE, CROP_SIZE) and mask.dtype == np.float32
    assert not mask.flags.writeable and face_mask() is mask  # computed once
    t = face_template()
    for x, y in t[:27]:
        assert mask[int(round(y)), int(round(x))] == 1.0
    top = face_polygon(t)[17:].min(axis=0)[1]  # the raised brows
    assert top < t[17:27, 1].min() - 20  # the forehead is covered
    assert mask[int(top) + 1, int(t[17:27, 0].mean())] == 1.0
    # exactly 0 at the border and in the corners, so nothing of the crop's black outside is pasted
    assert mask[0].max() == mask[-1].max() == mask[:, 0].max() == mask[:, -1].max() == 0
    assert mask[:20, :20].max() == 0 and mask[-20:, -20:].max() == 0
    # support: the polygon dilated by MASK_DILATE + MASK_FEATHER face widths, not the whole crop
    width = np.linalg.norm(t[16] - t[0])
    ys, xs = np.nonzero(mask)
    assert xs.min() >= t[0, 0] - (MASK_DILATE + MASK_FEATHER) * width - 2
    assert ys.max() <= t[8, 1] + (MASK_DILATE + MASK_FEATHER) * width + 2
    assert 0.3 < (mask > 0).mean() < 0.6


def _check_blend(matrix: np.ndarray, seed: int = 0):
    frame, crop = _noise((H, W, 3), seed), _smooth((CROP_SIZE, CROP_SIZE, 3), seed + 1)
    out = paste_back(frame, crop, matrix)
    assert out.shape == frame.shape and out.dtype == np.uint8
    weight = _frame_mask(matrix)
    support = cv2.dilate((weight > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert (~support).mean() > 0.3
    np.testing.assert_array_equal(out[~support], frame[~support])  # far from the face: the frame itself
    render = cv2.warpAffine(crop, matrix[:2], (W, H), flags=cv2.INTER_LINEAR)
    inside = weight >= 1.0
    assert inside.sum() > 1000
    assert np.abs(out[inside].astype(int) - render[inside]).max() <= 2  # inside: the render in place
    return out


def test_far_from_the_face_the_frame_inside_the_render():
    _check_blend(_matrix(1.5))


def test_rotated_and_scaled_matrix():
    matrix = _matrix(2.2, angle=0.5, centre=(400.0, 250.0))
    _check_blend(matrix, seed=3)
    # the template's jaw and brow landmarks, carried into the frame, get the render
    frame, crop = _noise((H, W, 3), 5), _smooth((CROP_SIZE, CROP_SIZE, 3), 6)
    out = paste_back(frame, crop, matrix)
    render = cv2.warpAffine(crop, matrix[:2], (W, H), flags=cv2.INTER_LINEAR)
    points = face_template()[:27] @ matrix[:2, :2].T + matrix[:2, 2]
    for x, y in np.round(points).astype(int):
        assert np.abs(out[y, x].astype(int) - render[y, x]).max() <= 2


@pytest.mark.parametrize("scale,angle", [(1.0, 0.0), (1.5, 0.0), (2.2, 0.5), (3.0, -0.3)])
def test_no_seam_with_a_constant_colour_difference(scale, angle):
    h, w = 1080, 1920
    matrix = _matrix(scale, angle, centre=(960.0, 540.0))
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = (60, 90, 120)
    diff = 80
    crop = np.full((CROP_SIZE, CROP_SIZE, 3), 0, np.uint8)
    crop[:] = (60 + diff, 90 + diff, 120 + diff)
    out = paste_back(frame, crop, matrix).astype(int)
    slope = 1.5 * diff / _ramp_px(matrix)  # the smoothstep's steepest: levels per frame pixel
    cx, cy = (matrix[:2] @ [128, 140, 1]).round().astype(int)  # the face's middle
    k = np.arange(-cy, h - cy)
    lines = [
        (out[cy, :], slope),  # across the cheeks
        (out[:, cx], slope),  # forehead to chin
        (out[cy + k, cx + k], slope * np.sqrt(2)),  # diagonal: neighbours sqrt(2) apart
    ]
    for line, per_step in lines:
        limit = int(np.ceil(per_step)) + 2
        assert (line[0] == frame[0, 0]).all() and (line[-1] == frame[0, 0]).all()  # starts and ends outside
        assert line.max(axis=0).tolist() == [60 + diff, 90 + diff, 120 + diff]  # crosses the face
        assert np.abs(np.diff(line, axis=0)).max() <= limit, (np.abs(np.diff(line, axis=0)).max(), limit)
    # the seam is spread over the feather: many intermediate values, not a step
    row = out[cy, :, 0]
    assert ((row > 60) & (row < 60 + diff)).sum() >= 2 * (_ramp_px(matrix) - 2)


def test_face_cut_by_the_frame_edge_and_face_outside():
    frame, crop = _noise((H, W, 3), 7), _noise((CROP_SIZE, CROP_SIZE, 3), 8)
    matrix = _matrix(2.0, 0.2, centre=(30.0, 20.0))  # most of the face outside, top-left
    out = paste_back(frame, crop, matrix)
    weight = _frame_mask(matrix)
    assert (weight >= 1).sum() > 100
    np.testing.assert_array_equal(out[weight == 0][:1000], frame[weight == 0][:1000])
    far = _matrix(1.0, centre=(-1000.0, -1000.0))
    assert np.array_equal(paste_back(frame, crop, far), frame)


def test_same_matrix_twice_and_a_custom_mask():
    frame, crop = _noise((H, W, 3), 9), _noise((CROP_SIZE, CROP_SIZE, 3), 10)
    matrix = _matrix(1.7, 0.1)
    first = paste_back(frame, crop, matrix)
    assert np.array_equal(paste_back(frame, crop, matrix), first)  # the cached warped mask
    square = np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
    square[100:150, 100:150] = 1.0
    out = paste_back(frame, crop, matrix, square)
    changed = np.abs(out.astype(int) - frame).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    corners = matrix[:2] @ np.array([[99, 151, 99, 151], [99, 99, 151, 151], [1, 1, 1, 1]], float)
    assert xs.min() >= corners[0].min() - 1 and xs.max() <= corners[0].max() + 1
    assert ys.min() >= corners[1].min() - 1 and ys.max() <= corners[1].max() + 1
    square[:] = 0  # a writeable mask is not cached: changing it changes the result
    assert np.array_equal(paste_back(frame, crop, matrix, square), frame)


def test_the_face_sr_mask_is_the_same_landmark_mask():
    from edtalk.face_sr import aligned_face_mask, alignment_matrix, five_points

    mask = aligned_face_mask(512)
    m = alignment_matrix(five_points(face_template()), 512)
    points = face_template()[:27] @ m[:, :2].T + m[:, 2]
    for x, y in np.round(points).astype(int):
        assert mask[y, x] == 1.0
    assert mask[0].max() == mask[-1].max() == mask[:, 0].max() == mask[:, -1].max() == 0
    # the crop's own mask carried by the same transform (up to resampling)
    carried = cv2.warpAffine(face_mask(), m, (512, 512), flags=cv2.INTER_LINEAR)
    assert np.abs(carried - mask).mean() < 0.02


def test_paste_back_of_the_unchanged_crop_restores_the_frame():
    frame = cv2.GaussianBlur(_noise((H, W, 3), 11), (0, 0), 3)
    matrix = _matrix(1.5, 0.2)
    crop = warp(frame, matrix)
    out = paste_back(frame, crop, matrix)
    assert np.abs(out.astype(int) - frame).mean() < 0.5
