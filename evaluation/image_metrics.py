"""Frame-quality metrics: PSNR and SSIM against the reference frame, and the no-reference CPBD sharpness.

All take (H, W, 3) uint8 RGB frames. PSNR and SSIM are scikit-image's (data range 255; SSIM over
the three channels with its default 7x7 window). CPBD is our implementation of Narvekar & Karam,
"A No-Reference Image Blur Metric Based on the Cumulative Probability of Blur Detection (CPBD)",
IEEE TIP 2011: the share of edge pixels whose width is below what a viewer notices as blur.
"""

import numpy as np
from skimage.color import rgb2gray
from skimage.feature import canny
from skimage.filters import sobel_v
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

CPBD_BLOCK = 64  # pixels per side of the blocks whose contrast sets the just-noticeable blur width
CPBD_EDGE_SHARE = 0.002  # a block is an edge block when more than this share of its pixels are edges
CPBD_BETA = 3.6  # slope of the probability-of-blur psychometric function
CPBD_P_JNB = 1 - np.exp(-1)  # 63%: probability of detecting blur at the just-noticeable width


def psnr(generated: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two (H, W, 3) uint8 frames (inf for identical frames)."""
    if np.array_equal(generated, reference):
        return float("inf")
    return float(peak_signal_noise_ratio(reference, generated, data_range=255))


def ssim(generated: np.ndarray, reference: np.ndarray) -> float:
    """Structural similarity of two (H, W, 3) uint8 frames, in [-1, 1] (1 for identical frames)."""
    return float(structural_similarity(reference, generated, data_range=255, channel_axis=2))


def _just_noticeable_width(contrast: float) -> float:
    """Edge width (pixels) at which blur becomes noticeable, from a block's contrast (0..255 grey levels)."""
    return 5.0 if contrast <= 50 else 3.0


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


def edge_widths(gray: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Width (pixels) of each edge pixel along its row (Marziliano et al. 2002): the distance between
    the grey-level extrema on either side, following the rise (or fall) of the edge through it.

    gray: (H, W) float in 0..255; edges: (H, W) bool. Returns (H, W) float, 0 where no edge.
    """
    step = np.diff(gray, axis=1)
    up_right, up_left = _run_lengths(step > 0)
    down_right, down_left = _run_lengths(step < 0)
    rising = sobel_v(gray) > 0  # horizontal change: positive where grey rises to the right
    widths = np.where(rising, up_right + up_left, down_right + down_left).astype(float)
    return np.where(edges, widths, 0.0)


def cpbd(frame: np.ndarray) -> float:
    """CPBD sharpness of one (H, W, 3) uint8 frame in [0, 1]: higher is sharper (0 with no edges).

    Edges come from Canny; widths along rows (vertical edges). In each 64x64 edge block the
    probability of blur of an edge of width w is 1 - exp(-(w / w_JNB) ** 3.6); CPBD is the share
    of those edges with probability at most 63%.
    """
    gray = rgb2gray(frame) * 255.0
    edges = canny(gray)
    widths = edge_widths(gray, edges)
    probabilities = []
    h, w = gray.shape
    for top in range(0, h - CPBD_BLOCK + 1, CPBD_BLOCK):
        for left in range(0, w - CPBD_BLOCK + 1, CPBD_BLOCK):
            block = (slice(top, top + CPBD_BLOCK), slice(left, left + CPBD_BLOCK))
            if edges[block].sum() <= CPBD_EDGE_SHARE * CPBD_BLOCK**2:
                continue
            jnb = _just_noticeable_width(float(gray[block].max() - gray[block].min()))
            block_widths = widths[block][edges[block] & (widths[block] > 0)]
            probabilities.append(1 - np.exp(-((block_widths / jnb) ** CPBD_BETA)))
    all_p = np.concatenate(probabilities) if probabilities else np.zeros(0)
    return float(np.mean(all_p <= CPBD_P_JNB)) if len(all_p) else 0.0
