"""Frame-quality metrics: PSNR and SSIM against the reference frame, and the no-reference CPBD sharpness.

All take (H, W, 3) uint8 RGB frames. PSNR and SSIM are scikit-image's (data range 255; SSIM over
the three channels with its default 7x7 uniform window, where Wang et al. 2004 use an 11x11
Gaussian: the report says so). PSNR is capped at `PSNR_CAP` dB, so that one identical frame does
not make a clip's mean infinite. CPBD is our implementation of Narvekar & Karam,
"A No-Reference Image Blur Metric Based on the Cumulative Probability of Blur Detection (CPBD)",
IEEE TIP 2011, as the reference `cpbd` package (1.0.7) measures it: widths only at (near-)vertical
edges, checked against that package's numbers (tests/fixtures/cpbd/).
"""

import numpy as np
from PIL import Image
from scipy.ndimage import convolve
from skimage.feature import canny
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

PSNR_CAP = 100.0  # dB: the PSNR of an identical frame (and the most any frame scores)
CPBD_BLOCK = 64  # pixels per side of the blocks whose contrast sets the just-noticeable blur width
CPBD_EDGE_SHARE = 0.002  # a block is an edge block when more than this share of its pixels are Canny edges
CPBD_BETA = 3.6  # slope of the probability-of-blur psychometric function
CPBD_SHARP_PERCENT = 63  # an edge counts as sharp when its probability of blur rounds to at most 63%
CPBD_MAX_RUN = 100  # the reference follows an edge's slope at most this many pixels each way
SOBEL_X = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8  # horizontal change, sum |w| = 1
NEAR_HORIZONTAL = 22.5  # degrees: gradients this close to horizontal have their edge width measured


def psnr(generated: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two (H, W, 3) uint8 frames, at most PSNR_CAP (identical frames)."""
    if np.array_equal(generated, reference):
        return PSNR_CAP
    return min(PSNR_CAP, float(peak_signal_noise_ratio(reference, generated, data_range=255)))


def ssim(generated: np.ndarray, reference: np.ndarray) -> float:
    """Structural similarity of two (H, W, 3) uint8 frames, in [-1, 1] (1 for identical frames)."""
    return float(structural_similarity(reference, generated, data_range=255, channel_axis=2))


def _run_lengths(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """steps (H, W-1) bool between neighbouring pixels -> for each pixel (H, W): how many consecutive
    True steps start at it going right, and how many end at it coming from the left."""
    h, n = steps.shape
    right, left = np.zeros((h, n + 1), int), np.zeros((h, n + 1), int)
    for x in range(n - 1, -1, -1):
        right[:, x] = np.where(steps[:, x], right[:, x + 1] + 1, 0)
    for x in range(1, n + 1):
        left[:, x] = np.where(steps[:, x - 1], left[:, x - 1] + 1, 0)
    return right, left


def vertical_edges(gray: np.ndarray) -> np.ndarray:
    """(H, W) float grey levels -> (H, W) bool edges of the horizontal Sobel response, as Octave's
    `edge(..., 'sobel')` finds them: squared response above twice the root of its mean, then kept
    where it beats both neighbours along the row or both along the column."""
    strength = np.square(convolve(gray, SOBEL_X))
    strength[strength <= 2 * np.sqrt(strength.mean())] = 0
    pad = np.pad(strength, 1)
    along_row = (strength > pad[1:-1, :-2]) & (strength > pad[1:-1, 2:])
    along_column = (strength > pad[:-2, 1:-1]) & (strength > pad[2:, 1:-1])
    return along_row | along_column


def edge_widths(gray: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Width (pixels) of each edge pixel along its row (Marziliano et al. 2002) where the gradient is
    within 22.5 degrees of horizontal; 0 elsewhere and on the image border.

    The width runs from the last pixel of the monotone slope left of the edge to the last one right
    of it (each side followed from the edge's neighbour, at most CPBD_MAX_RUN pixels): rising for a
    gradient pointing right (or exactly vertical, as the reference counts it), falling for one pointing left.
    gray: (H, W) float in 0..255; edges: (H, W) bool. Returns (H, W) float.
    """
    grad_y, grad_x = np.gradient(gray)
    with np.errstate(invalid="ignore"):
        angle = np.where(grad_x != 0, np.arctan2(grad_y, grad_x) * (180 / np.pi), 0.0)
    quantised = np.round(angle / 45)  # the reference rounds to multiples of 45 degrees (half to even)
    rising_edge, falling_edge = quantised == 0, np.abs(quantised) == 4
    up_right, up_left = _run_lengths(np.diff(gray, axis=1) > 0)
    down_right, down_left = _run_lengths(np.diff(gray, axis=1) < 0)
    widths = np.zeros_like(gray, dtype=float)

    def across(left_runs: np.ndarray, right_runs: np.ndarray) -> np.ndarray:
        """2 + the runs ending just left of each inner pixel and starting just right of it, each capped."""
        return 2 + np.minimum(left_runs[:, :-2], CPBD_MAX_RUN) + np.minimum(right_runs[:, 2:], CPBD_MAX_RUN)

    inner = (slice(1, -1), slice(1, -1))
    rows = slice(1, -1)
    widths[inner] = np.where(
        rising_edge[inner],
        across(up_left[rows], up_right[rows]),
        np.where(falling_edge[inner], across(down_left[rows], down_right[rows]), 0),
    )
    return np.where(edges, widths, 0.0)


def gray_levels(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float64 grey levels 0..255 as the reference reads images (PIL's 'L')."""
    return np.asarray(Image.fromarray(frame).convert("L"), dtype=np.float64)


def cpbd(frame: np.ndarray) -> float:
    """CPBD sharpness of one (H, W, 3) uint8 frame in [0, 1]: higher is sharper (0 with no edges).

    Blocks of 64x64 (the image's last partial blocks are left out) with more than 0.2% Canny edge
    pixels are edge blocks; each measured width w there (Sobel edges near vertical, `edge_widths`)
    has a probability of blur 1 - exp(-(w / w_JNB) ** 3.6), with w_JNB 5 in blocks of contrast up to
    50 grey levels and 3 above. CPBD is the share of those edges whose probability, in whole
    percent, is at most 63.
    """
    gray = gray_levels(frame)
    blocks = canny(gray)
    widths = edge_widths(gray, vertical_edges(gray))
    probabilities = []
    h, w = gray.shape
    for top in range(0, h - CPBD_BLOCK + 1, CPBD_BLOCK):
        for left in range(0, w - CPBD_BLOCK + 1, CPBD_BLOCK):
            block = (slice(top, top + CPBD_BLOCK), slice(left, left + CPBD_BLOCK))
            if blocks[block].sum() <= CPBD_EDGE_SHARE * CPBD_BLOCK**2:
                continue
            jnb = 5.0 if int(gray[block].max() - gray[block].min()) <= 50 else 3.0
            block_widths = widths[block][widths[block] > 0]
            probabilities.append(1 - np.exp(-((block_widths / jnb) ** CPBD_BETA)))
    all_p = np.concatenate(probabilities) if probabilities else np.zeros(0)
    return float(np.mean(np.round(all_p * 100) <= CPBD_SHARP_PERCENT)) if len(all_p) else 0.0
