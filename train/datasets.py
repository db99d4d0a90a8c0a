"""PyTorch datasets over the lmdb written by data_preprocess/prepare_dataset.py, one per kind of training sample.

Images are (3, 256, 256) float32 in [-1, 1]; mel windows (.., 1, 80, 16) as the demos use them.
The lmdb is opened lazily in each DataLoader worker (see LmdbReader).

- `PairDataset`: E/G fine-tuning, expression decoupling, per-person fine-tuning: source and target
  frames of one person.
- `CrossPairDataset`: mouth-pose decoupling (cross-reconstruction): two persons' frames and their
  mouth swaps.
- `AudioWindowDataset`: audio-to-mouth and the lip-sync expert: consecutive frames with their mel
  windows (and an off-sync window).
"""

import abc
import json
import random
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage.transform import SimilarityTransform
from torch.utils.data import Dataset

from data_preprocess.lmdb_store import LmdbReader, face_boxes, group_of, image_tensor
from edtalk.audio import windows_from_mel


class LmdbClips(Dataset, abc.ABC):
    """Base: the clips of one split (`<root>/lists/<split>.json`) in `<root>/lmdb`.

    One item per clip. An item is addressed by its clip index or by `(epoch, index)`; with a `seed`
    its random frame choices are a function of (seed, epoch, index) (a bare index is epoch 0), so
    every epoch draws new frames in whichever worker process serves it (`EpochSampler` sends the
    epoch with each index), and any run replays exactly. Without a seed, Python's RNG is used.
    Every item carries its clip `index`.
    """

    def __init__(self, root: str | Path, split: str = "train", seed: int | None = None):
        root = Path(root)
        self.reader = LmdbReader(root / "lmdb")
        list_path = root / "lists" / f"{split}.json"
        if not list_path.is_file():
            raise FileNotFoundError(
                f"no split list {list_path}: re-run python -m data_preprocess.prepare_dataset with --output {root} "
                "(finished videos are skipped; it writes the train, val and test lists)"
            )
        self.names = json.loads(list_path.read_text())
        self.by_group = defaultdict(list)
        for name in self.names:
            self.by_group[group_of(name)].append(name)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = random.Random(None if self.seed is None else hash((self.seed, epoch, index)))
        return {**self.sample(index, rng), "index": index}

    @abc.abstractmethod
    def sample(self, index: int, rng: random.Random) -> dict:
        """The training sample of clip `index`, its random choices drawn from `rng`."""

    def image(self, name: str, frame: int) -> torch.Tensor:
        return image_tensor(self.reader.frame(name, frame))


class PairDataset(LmdbClips):
    """Self-reconstruction pairs: {'source', 'target'} (3, 256, 256) of the same person.

    The target is a random frame of clip `index`; the source a random frame of a random clip of the
    same group (person / video); for MEAD-style names (`actor#emotion#level#clip`) a neutral clip
    is preferred for the source, as in the official stage-1 data. `same_clip=True` takes both from
    the same clip (per-person fine-tuning on one video).
    """

    def __init__(self, root, split="train", seed=None, same_clip: bool = False):
        super().__init__(root, split, seed)
        self.same_clip = same_clip

    def sample(self, index: int, rng: random.Random) -> dict:
        name = self.names[index]
        source_name = name if self.same_clip else self._source_clip(name, rng)
        target = rng.randrange(self.reader.length(name))
        source = rng.randrange(self.reader.length(source_name))
        if source_name == name and self.reader.length(name) > 1:
            while source == target:
                source = rng.randrange(self.reader.length(name))
        return {"source": self.image(source_name, source), "target": self.image(name, target)}

    def _source_clip(self, name: str, rng: random.Random) -> str:
        clips = self.by_group[group_of(name)]
        neutral = [c for c in clips if c.count("#") >= 3 and c.split("#")[1] == "neutral"]
        return rng.choice(neutral or clips)


def eye_mouth_points(landmarks: np.ndarray) -> np.ndarray:
    """(3, 2): centres of the two eyes (36-41, 42-47) and of the inner mouth (60-67)."""
    return np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[60:68].mean(0)])


def swap_mouth(x: np.ndarray, x_landmarks: np.ndarray, y: np.ndarray, y_landmarks: np.ndarray, margin: int = 5):
    """Image y with the mouth of image x pasted in (the official `get_IA_MB`).

    x is aligned onto y by the similarity that maps its eye and inner-mouth centres onto y's,
    translated so the inner-mouth centres coincide exactly; the patch under y's outer-mouth box
    (landmarks 48-67, +- margin) is then copied from the aligned x. Images (H, W, 3) uint8.
    """
    src, dst = eye_mouth_points(x_landmarks), eye_mouth_points(y_landmarks)
    matrix = SimilarityTransform.from_estimate(src, dst).params[:2].copy()
    matrix[:, 2] += dst[2] - (matrix[:, :2] @ src[2] + matrix[:, 2])
    h, w = y.shape[:2]
    aligned = cv2.warpAffine(x, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mouth = y_landmarks[48:68]
    x0, y0 = np.clip(mouth.min(0).astype(int) - margin, 0, [w, h])
    x1, y1 = np.clip(mouth.max(0).astype(int) + margin, 0, [w, h])
    out = y.copy()
    out[y0:y1, x0:x1] = aligned[y0:y1, x0:x1]
    return out


class CrossPairDataset(LmdbClips):
    """Cross-reconstruction samples for mouth-pose decoupling (person A = clip `index`, B random).

    Keys: img_a_identity, img_a, img_b_identity, img_b, and the swaps imagea_b (A's frame with B's
    mouth: A pose, B mouth) and imageb_a (B's frame with A's mouth). Frames whose landmarks were
    lost are not used as targets.
    """

    def sample(self, index: int, rng: random.Random) -> dict:
        name_a = self.names[index]
        groups = [g for g in self.by_group if g != group_of(name_a)] or [group_of(name_a)]
        name_b = rng.choice(self.by_group[rng.choice(groups)])
        (id_a, a, lm_a), (id_b, b, lm_b) = self._frames(name_a, rng), self._frames(name_b, rng)
        return {
            "img_a_identity": image_tensor(id_a),
            "img_a": image_tensor(a),
            "img_b_identity": image_tensor(id_b),
            "img_b": image_tensor(b),
            "imagea_b": image_tensor(swap_mouth(b, lm_b, a, lm_a)),
            "imageb_a": image_tensor(swap_mouth(a, lm_a, b, lm_b)),
        }

    def _frames(self, name: str, rng: random.Random):
        """(identity frame, target frame, target landmarks) of one clip."""
        landmarks = self.reader.landmarks(name)
        valid = np.flatnonzero(~np.isnan(landmarks).any(axis=(1, 2)))
        if len(valid) == 0:
            raise ValueError(f"clip {name} has no frame with landmarks")
        target = int(rng.choice(list(valid)))
        identity = rng.randrange(len(landmarks))
        return self.reader.frame(name, identity), self.reader.frame(name, target), landmarks[target]


class AudioWindowDataset(LmdbClips):
    """Consecutive frames with their mel windows (clips without audio are left out).

    Keys: frames (window, 3, 256, 256), mels (window, 1, 80, 16) (one per frame, as the demos cut
    them), identity (3, 256, 256) (a random frame of the clip), mouth_boxes and face_boxes (window, 4),
    start (int). With `sync_negatives`: also `sync_mel` (1, 80, 16), the window of the first frame
    (covers the `window` frames at 25 fps, as Wav2Lip's expert sees them), or in half of the samples
    a window at least `window` frames away, and `in_sync` (1.0 or 0.0).
    """

    def __init__(self, root, split="train", seed=None, window: int = 5, sync_negatives: bool = False):
        super().__init__(root, split, seed)
        self.names = [n for n in self.names if self.reader.info(n)["has_audio"] and self.reader.length(n) >= window]
        self.window = window
        self.sync_negatives = sync_negatives

    def sample(self, index: int, rng: random.Random) -> dict:
        name = self.names[index]
        length = self.reader.length(name)
        start = rng.randrange(length - self.window + 1)
        span = range(start, start + self.window)
        mels = windows_from_mel(self.reader.mel(name), length)
        item = {
            "frames": torch.stack([self.image(name, i) for i in span]),
            "mels": torch.from_numpy(mels[start : start + self.window]),
            "identity": self.image(name, rng.randrange(length)),
            "mouth_boxes": torch.from_numpy(self.reader.mouth_boxes(name)[start : start + self.window]),
            "face_boxes": torch.from_numpy(face_boxes(self.reader.landmarks(name)[start : start + self.window])),
            "start": start,
        }
        if self.sync_negatives:
            far = [i for i in range(length) if abs(i - start) >= self.window]
            in_sync = not far or rng.random() < 0.5
            item["sync_mel"] = torch.from_numpy(mels[start if in_sync else rng.choice(far)])
            item["in_sync"] = torch.tensor(float(in_sync))
        return item
