"""FID: Fréchet distance between Inception pool3 statistics of generated and reference frames.

The network is our FIDInceptionV3 (networks/inception.py) on pytorch-fid's released weights
`pt_inception-2015-12-05-6726825d.pth`, supplied by the user (nothing downloads). Frames enter as
pytorch-fid feeds image files: RGB scaled to [0, 1].
"""

from pathlib import Path

import numpy as np
import torch

from edtalk.checkpoints import read_checkpoint
from edtalk.errors import CheckpointError
from networks.inception import FIDInceptionV3

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"


def load_inception(path: str | Path) -> FIDInceptionV3:
    """pytorch-fid's released state dict -> FIDInceptionV3 in eval mode; CheckpointError (one line) otherwise."""
    path = Path(path)
    state = read_checkpoint(path, "Inception weights", f"pytorch-fid's {WEIGHTS_FILE}; see README")
    net = FIDInceptionV3()
    own = net.state_dict()
    unknown = sorted(set(state) - set(own))
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    wrong = sorted(k for k in set(state) & set(own) if tuple(state[k].shape) != tuple(own[k].shape))
    if unknown or missing or wrong:
        first = (unknown or missing or wrong)[0]
        raise CheckpointError(
            f"{path} is not {WEIGHTS_FILE}: {len(unknown)} unexpected, {len(missing)} missing, "
            f"{len(wrong)} mis-shaped keys (first: {first})"
        )
    net.load_state_dict(state, strict=False)
    return net.eval()


class InceptionFeatures:
    """Pool3 features of frames: `__call__((N, H, W, 3) uint8 RGB) -> (N, 2048) float64`."""

    def __init__(self, weights_path: str | Path, device: str = "cpu", batch_size: int = 32):
        self.device = torch.device(device)
        self.net = load_inception(weights_path).to(self.device)
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = []
        for first in range(0, len(frames), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(frames[first : first + self.batch_size]))
            images = batch.permute(0, 3, 1, 2).float().div(255).to(self.device)
            out.append(self.net(images).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 2048))


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and covariance (D, D) (unbiased, N - 1), as pytorch-fid."""
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding noise clipped)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)): the Fréchet distance of two Gaussians.

    tr((S1 S2)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the symmetric
    S1^(1/2) S2 S1^(1/2), which has the same eigenvalues as S1 S2. It is the quantity pytorch-fid
    takes from scipy's general `sqrtm(S1 S2)`, but stays exact and fast (a second or two for
    2048-d) when the covariances are singular (fewer frames than dimensions), where `sqrtm` is
    slow and inaccurate and pytorch-fid falls back to adding 1e-6 to the diagonals.
    """
    diff = mu1 - mu2
    root1 = _sqrt_psd(sigma1)
    cross = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    tr_covmean = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid(generated: np.ndarray, reference: np.ndarray) -> float:
    """FID of two (N, D) feature sets (N >= 2 each).

    With fewer frames than feature dimensions the covariances are S = A A^T (A: centred features
    / sqrt(N - 1), D x N), and tr((S1 S2)^(1/2)) is the sum of the singular values of A1^T A2
    (N1 x N2): exact and much cheaper than a 2048 x 2048 matrix square root.
    """
    if min(len(generated), len(reference)) > generated.shape[1]:
        return frechet_distance(*statistics(generated), *statistics(reference))
    a1 = (generated - generated.mean(axis=0)) / np.sqrt(len(generated) - 1)
    a2 = (reference - reference.mean(axis=0)) / np.sqrt(len(reference) - 1)
    diff = generated.mean(axis=0) - reference.mean(axis=0)
    tr_covmean = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    return float(diff @ diff + np.sum(a1 * a1) + np.sum(a2 * a2) - 2 * tr_covmean)
