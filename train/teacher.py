"""The teacher's coefficients of a training set, computed once and cached beside it.

The audio-to-motion stages (audio-to-expression, audio-to-pose) learn the motion coefficients the
frozen generator's encoder assigns to every frame of the training clips. Running the image encoder
at every step would cost far more than the small audio networks themselves, so the coefficients of
every clip of the set are computed once per (set, generator) and stored in
`<set>/teacher-<first 16 hex digits of the generator file's SHA-256>.npz`, with the cache format's
`version` and one content stamp per clip (`LmdbReader.stamp`):

| array     | shape        | what                                                             |
| --------- | ------------ | ---------------------------------------------------------------- |
| `version` | ()  int      | `VERSION`: a cache of another version is recomputed entirely      |
| `names`   | (N,) str     | clip names, in the lmdb's order                                  |
| `stamps`  | (N,) str     | each clip's content stamp when it was encoded                    |
| `offsets` | (N + 1,) int | frames of clip i are rows offsets[i]:offsets[i + 1]              |
| `lip`     | (F, 20)      | mouth coefficients, float32                                      |
| `pose`    | (F, 6)       | head-pose coefficients                                           |
| `exp`     | (F, 10)      | expression coefficients (only with a full EDTalk generator)      |

API:

    teacher = load_or_compute("data/mead", "runs/mp/checkpoints/best.pt", device)   # TeacherCoefficients
    teacher["M003#happy#level_2#001"]       # {'lip': (T, 20), 'pose': (T, 6), 'exp': (T, 10)} float32 arrays
    teacher.parts                           # ('lip', 'pose', 'exp') or ('lip', 'pose')
    CoefficientWindowDataset("data/mead", "train", teacher, window=50, seed=0)   # mels + coefficients

`load_or_compute` is collective under torchrun: rank 0 computes (or completes) the cache while the
other processes wait at a barrier of their own (a gloo group with a one-day timeout, so a long
first pass is not cut off by the training group's timeout, 10 min with NCCL), then every process
reads it. A later run with the same generator file only reads the file; a set that gained or
changed clips since (a re-run of `prepare_dataset.py`) gets only those clips encoded, with a
progress bar on rank 0 (frames, time left). A different generator file gets its own cache.
"""

import hashlib
import logging
import random
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from data_preprocess.lmdb_store import LmdbReader
from edtalk.audio import windows_from_mel
from edtalk.checkpoints import load_generator
from edtalk.errors import CheckpointError
from edtalk.files import write_atomically
from edtalk.motion_template import motion_fingerprint
from networks.audio2exp import EMOTIONS

from . import distributed
from .datasets import LmdbClips

log = logging.getLogger(__name__)

PARTS = ("lip", "pose", "exp")
VERSION = 2  # of the cache format; 2: per-clip stamps
_EMOTION = re.compile(rf"(?:^|[#_/])({'|'.join(EMOTIONS)})(?=[#_/]|$)")


def generator_digest(path: str | Path) -> str:
    """First 16 hex digits of the SHA-256 of the generator file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]


def cache_path(data: str | Path, generator: str | Path) -> Path:
    """Where the teacher coefficients of set `data` under generator file `generator` are stored."""
    return Path(data) / f"teacher-{generator_digest(generator)}.npz"


class TeacherCoefficients:
    """The cached coefficients of one set, in memory: `teacher[clip]` -> {part: (T, dim) float32}."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot read the teacher cache {self.path}: {exc}; delete it to recompute") from None
        self.version = int(arrays["version"]) if "version" in arrays else 1
        self.stamps = dict(zip(map(str, arrays["names"]), map(str, arrays.get("stamps", []))))
        self.parts = tuple(p for p in PARTS if p in arrays)
        self._arrays = {p: arrays[p] for p in self.parts}
        self._rows = {
            str(name): (int(a), int(b)) for name, a, b in zip(arrays["names"], arrays["offsets"], arrays["offsets"][1:])
        }

    @property
    def names(self) -> list[str]:
        return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, name: str) -> bool:
        return name in self._rows

    def __getitem__(self, name: str) -> dict[str, np.ndarray]:
        a, b = self._rows[name]
        return {p: self._arrays[p][a:b] for p in self.parts}


class _ClipFrames(Dataset):
    """All frames of one clip per item: (T, 256, 256, 3) uint8 (decoded in DataLoader workers)."""

    def __init__(self, lmdb: Path, names: list[str]):
        self.reader, self.names = LmdbReader(lmdb), names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> torch.Tensor:
        name = self.names[i]
        return torch.from_numpy(np.stack([self.reader.frame(name, t) for t in range(self.reader.length(name))]))


@torch.no_grad()
def encode_clips(
    gen, lmdb: Path, names: list[str], device: torch.device, batch_size: int = 16, workers: int = 0
) -> dict[str, list[np.ndarray]]:
    """The generator's coefficients of every frame of clips `names`: {part: [(T_i, dim) per clip]}.

    Frames are encoded `batch_size` at a time, images (3, 256, 256) in [-1, 1] as in training."""
    parts = PARTS if gen.has_expression else PARTS[:2]
    out = {p: [] for p in parts}
    loader = DataLoader(_ClipFrames(lmdb, names), batch_size=None, num_workers=workers)
    reader = LmdbReader(lmdb)
    total = sum(reader.length(n) for n in names)
    bar = tqdm(total=total, desc="teacher pass", unit="frame", disable=not distributed.is_main())
    for frames in loader:
        bar.update(len(frames))
        coefs = {p: [] for p in parts}
        for batch in frames.split(batch_size):
            images = batch.to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1)
            h = gen.encode(images)
            for p in parts:
                coefs[p].append(gen.coefficients(h, p).float().cpu())
        for p in parts:
            out[p].append(torch.cat(coefs[p]).numpy())
    bar.close()
    return out


def generator_fingerprint(path: str | Path) -> str:
    """edtalk.motion_template.fingerprint of the weights that turn frames into coefficients (encoder
    and motion heads) of the generator at `path`: what a motion model trained against it records."""
    try:
        gen = load_generator(path, "cpu")
    except CheckpointError as exc:
        raise SystemExit(f"--generator: {exc}") from None
    return motion_fingerprint(gen)


def write(path: Path, names: list[str], stamps: list[str], coefs: dict[str, list[np.ndarray]]) -> None:
    """Write a cache atomically (see edtalk/files.py): coefs = {part: [(T_i, dim) per clip]}."""
    lengths = [len(c) for c in next(iter(coefs.values()))]
    arrays = {p: np.concatenate(c).astype(np.float32) for p, c in coefs.items()}
    with write_atomically(path) as f:
        np.savez(
            f,
            version=np.array(VERSION),
            names=np.array(names, dtype=str),
            stamps=np.array(stamps, dtype=str),
            offsets=np.cumsum([0, *lengths]),
            **arrays,
        )


def _update(path: Path, data: Path, generator: Path, device: torch.device, batch_size: int, workers: int) -> None:
    """Create the cache, or encode the clips of the set it lacks or holds with another stamp; nothing
    to do when it is complete and current."""
    reader = LmdbReader(data / "lmdb")
    stamps = {n: reader.stamp(n) for n in reader.names()}
    old = TeacherCoefficients(path) if path.is_file() else None
    if old is not None and old.version != VERSION:
        log.info("teacher: %s has cache format %d (now %d): recomputed", path, old.version, VERSION)
        old = None
    kept = [n for n in old.names if old.stamps.get(n) == stamps.get(n)] if old is not None else []
    missing = [n for n in stamps if n not in kept]
    if not missing:
        return
    try:
        gen = load_generator(generator, device)
    except CheckpointError as exc:
        raise SystemExit(f"--generator: {exc}") from None
    log.info("teacher: encoding %d clips of %s with %s (once; cached in %s)", len(missing), data, generator, path)
    new = encode_clips(gen, data / "lmdb", missing, device, batch_size, workers)
    new = {p: [old[n][p] for n in kept] + new[p] for p in new}  # the same generator file: the same parts
    write(path, kept + missing, [stamps[n] for n in kept + missing], new)


def load_or_compute(
    data: str | Path, generator: str | Path, device: torch.device, batch_size: int = 16, workers: int = 0
) -> TeacherCoefficients:
    """The teacher coefficients of every clip of set `data` under generator checkpoint `generator`
    (computed on rank 0 the first time, see the module docstring); collective under torchrun."""
    data, generator = Path(data), Path(generator)
    if not generator.is_file():
        raise SystemExit(f"--generator {generator}: file not found (the trained generator, the teacher)")
    path = cache_path(data, generator)
    waiting = dist.new_group(backend="gloo", timeout=timedelta(days=1)) if dist.is_initialized() else None
    if distributed.is_main():
        _update(path, data, generator, device, batch_size, workers)
    if waiting is not None:
        dist.barrier(group=waiting)
        dist.destroy_process_group(waiting)
    return TeacherCoefficients(path)


def emotion_label(name: str) -> int:
    """Index in `EMOTIONS` of the MEAD emotion in a clip name, -1 if it names none.

    Works for the MEAD layout's `M003#happy#level_2#001` and for names made from MEAD's own
    folders (`M003_video_front_happy_level_2_001`)."""
    found = _EMOTION.search(name)
    return EMOTIONS.index(found.group(1)) if found else -1


class CoefficientWindowDataset(LmdbClips):
    """Mel windows of `window` consecutive frames with the teacher's coefficients of those frames.

    Keys: mels (window + 2 * context, 1, 80, 16), one per frame as the demos cut them, for frames
    start - context .. start + window + context - 1: the clip's real audio on both sides, the first
    / last frame's window repeated only beyond the clip's true ends (as at inference); one (window,
    dim) float32 tensor per teacher part ('lip', 'pose', 'exp'); emotion (int, index in EMOTIONS,
    -1 when the clip name has none); start (int). Clips without audio, shorter than `window` or
    missing from the teacher are left out.
    """

    def __init__(
        self,
        root,
        split: str,
        teacher: TeacherCoefficients,
        window: int = 50,
        seed: int | None = None,
        context: int = 0,
    ):
        super().__init__(root, split, seed)
        self.teacher, self.window, self.context = teacher, window, context
        self.names = [
            n
            for n in self.names
            if n in teacher and self.reader.info(n)["has_audio"] and self.reader.length(n) >= window
        ]

    def sample(self, index: int, rng: random.Random) -> dict:
        name = self.names[index]
        length = self.reader.length(name)
        start = rng.randrange(length - self.window + 1)
        span = slice(start, start + self.window)
        frames = np.clip(np.arange(start - self.context, start + self.window + self.context), 0, length - 1)
        mels = windows_from_mel(self.reader.mel(name), length)[frames]
        coefs = {p: torch.from_numpy(np.ascontiguousarray(c[span])) for p, c in self.teacher[name].items()}
        return {"mels": torch.from_numpy(mels), **coefs, "emotion": emotion_label(name), "start": start}
