"""The paper's metrics, offline: PSNR, SSIM, M-LMD, F-LMD, CPBD, LSE-C / LSE-D, CSIM, FID.

Command line: `python -m evaluation --generated DIR --reference DIR --out results/` (see
evaluation/__main__.py) and `python -m evaluation.protocol` (render a test split, then score it).
Networks load from user-supplied released files; nothing downloads.
"""

from .runner import EvalConfig, FolderResults, evaluate_folders, evaluate_pairs
from .sync import SyncNetScorer

__all__ = ["EvalConfig", "FolderResults", "SyncNetScorer", "evaluate_folders", "evaluate_pairs"]
