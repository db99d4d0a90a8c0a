"""The training-set store: one lmdb database, written by prepare_dataset.py and read by dataset.py.

Layout (every key and value is bytes; the first four are the official EDTalk keys):

| key                          | value                                                          |
| ---------------------------- | -------------------------------------------------------------- |
| `length`                     | number of clips, ASCII                                         |
| `<clip>-length`              | frames in the clip, 7-digit zero-padded ASCII                   |
| `<clip>-<frame:07d>`         | JPEG of the aligned 256x256 RGB frame (25 fps)                  |
| `names`                      | JSON list of all clip names, in writing order                   |
| `meta`                       | JSON: format, version, fps, image size, clip length             |
| `<clip>-landmarks`           | .npy float32 (T, 68, 2): dlib 68 points (x, y) on the crop; NaN if lost |
| `<clip>-mouth_boxes`         | .npy float32 (T, 4): x1, y1, x2, y2 of landmarks 48-67 +- 5 px  |
| `<clip>-mel`                 | .npy float32 (n_mel, 80): log-mel of the clip's audio (absent if silent) |
| `<clip>-info`                | JSON: source video, first frame, crop matrix, group, has_audio  |
| `video:<relative path>`      | JSON {"clips": [...]}: written last, marks a finished video     |

Clip names follow the official lists: `<video stem>` for a clip that is the whole video, else
`<video stem>#<k>` (k from 1) for its 5-second pieces. The group (person / source video) of a
clip is its name before the first `#` (the MEAD actor `M003` of `M003#angry#level_1#001`).
"""

import hashlib
import io
import json
import os
from pathlib import Path

import cv2
import lmdb
import numpy as np
import torch

FORMAT = "edtalk-lmdb"
VERSION = 1
MAP_SIZE = 1 << 40  # address space only: the file grows with the data


def frame_key(name: str, index: int) -> bytes:
    return f"{name}-{index:07d}".encode()


def field_key(name: str, field: str) -> bytes:
    """Per-clip fields: length, landmarks, mouth_boxes, mel, info."""
    return f"{name}-{field}".encode()


def video_key(relative_path: str) -> bytes:
    return f"video:{relative_path}".encode()


def group_of(name: str) -> str:
    """Person / source-video id of a clip: its name before the first '#'."""
    return name.split("#", 1)[0]


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_jpeg(frame: np.ndarray, quality: int = 95) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> (H, W, 3) uint8 RGB."""
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def image_tensor(frame: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().div(127.5).sub(1)


def face_boxes(landmarks: np.ndarray, size: int = 256) -> np.ndarray:
    """(T, 4) float32 x1, y1, x2, y2 around each frame's 68 landmarks; the whole crop where they were lost."""
    boxes = np.concatenate([landmarks.min(axis=1), landmarks.max(axis=1)], axis=1)
    boxes[np.isnan(boxes).any(axis=1)] = (0, 0, size, size)
    return boxes.astype(np.float32)


class LmdbWriter:
    """Writes clips, each in one transaction, so an interrupted run leaves only whole clips."""

    def __init__(self, path: str | Path, fps: float, size: int, clip_seconds: float):
        path = Path(path).resolve()
        path.mkdir(parents=True, exist_ok=True)
        _close_readers(str(path))
        self.env = lmdb.open(str(path), map_size=MAP_SIZE, subdir=True)
        self.meta = {"format": FORMAT, "version": VERSION, "fps": fps, "size": size, "clip_seconds": clip_seconds}

    def is_done(self, relative_path: str) -> bool:
        with self.env.begin() as txn:
            return txn.get(video_key(relative_path)) is not None

    def write_clip(
        self,
        name: str,
        jpegs: list[bytes],
        landmarks: np.ndarray,
        mouth_boxes: np.ndarray,
        mel: np.ndarray | None,
        info: dict,
    ) -> None:
        with self.env.begin(write=True) as txn:
            for i, data in enumerate(jpegs):
                txn.put(frame_key(name, i), data)
            txn.put(field_key(name, "length"), f"{len(jpegs):07d}".encode())
            txn.put(field_key(name, "landmarks"), npy_bytes(landmarks.astype(np.float32)))
            txn.put(field_key(name, "mouth_boxes"), npy_bytes(mouth_boxes.astype(np.float32)))
            if mel is not None:
                txn.put(field_key(name, "mel"), npy_bytes(mel.astype(np.float32)))
            txn.put(field_key(name, "info"), json.dumps(info).encode())

    def finish_video(self, relative_path: str, clips: list[str]) -> None:
        with self.env.begin(write=True) as txn:
            txn.put(video_key(relative_path), json.dumps({"clips": clips}).encode())

    def finalize(self) -> list[str]:
        """Write the index (`names`, `length`, `meta`) over every finished video; returns the names."""
        names = []
        with self.env.begin(write=True) as txn:
            for key, value in txn.cursor():
                if key.startswith(b"video:"):
                    names.extend(json.loads(value)["clips"])
            txn.put(b"names", json.dumps(names).encode())
            txn.put(b"length", str(len(names)).encode())
            txn.put(b"meta", json.dumps(self.meta).encode())
        return names

    def close(self) -> None:
        self.env.close()


_OPEN: dict[tuple[int, str], lmdb.Environment] = {}  # (pid, path) -> read-only environment


def _forget_inherited() -> None:
    """In a forked child (DataLoader worker) close the handles inherited from the parent, whose
    paths lmdb would otherwise consider open in this process."""
    for key in [k for k in _OPEN if k[0] != os.getpid()]:
        _OPEN.pop(key).close()


os.register_at_fork(after_in_child=_forget_inherited)


def _read_env(path: str) -> lmdb.Environment:
    """One read-only environment per database and process (lmdb refuses a second in the same process)."""
    key = (os.getpid(), path)
    if key not in _OPEN:
        _OPEN[key] = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False)
    return _OPEN[key]


def _close_readers(path: str) -> None:
    """Close this process's read-only handle on `path` (before writing to it); readers reopen lazily."""
    env = _OPEN.pop((os.getpid(), path), None)
    if env is not None:
        env.close()


class LmdbReader:
    """Read access, opened lazily in each process (an lmdb handle must not cross a fork)."""

    def __init__(self, path: str | Path):
        self.path = str(Path(path).resolve())
        if not Path(self.path, "data.mdb").is_file():
            raise FileNotFoundError(f"no lmdb database in {self.path} (run data_preprocess/prepare_dataset.py)")

    def _get(self, key: bytes) -> bytes | None:
        with _read_env(self.path).begin(buffers=False) as txn:
            return txn.get(key)

    def _require(self, key: bytes) -> bytes:
        value = self._get(key)
        if value is None:
            raise KeyError(f"{key.decode()} not in {self.path}")
        return value

    def meta(self) -> dict:
        return json.loads(self._require(b"meta"))

    def names(self) -> list[str]:
        return json.loads(self._require(b"names"))

    def length(self, name: str) -> int:
        return int(self._require(field_key(name, "length")))

    def frame(self, name: str, index: int) -> np.ndarray:
        """(256, 256, 3) uint8 RGB."""
        return decode_jpeg(self._require(frame_key(name, index)))

    def landmarks(self, name: str) -> np.ndarray:
        return npy_array(self._require(field_key(name, "landmarks")))

    def mouth_boxes(self, name: str) -> np.ndarray:
        return npy_array(self._require(field_key(name, "mouth_boxes")))

    def mel(self, name: str) -> np.ndarray | None:
        data = self._get(field_key(name, "mel"))
        return None if data is None else npy_array(data)

    def info(self, name: str) -> dict:
        return json.loads(self._require(field_key(name, "info")))

    def stamp(self, name: str) -> str:
        """16 hex digits identifying a clip's content (its length, info, landmarks, mel, first and last
        frames): a clip re-written by prepare_dataset.py from a changed video gets another stamp."""
        digest = hashlib.blake2b(digest_size=8)
        last = self.length(name) - 1
        for key in (field_key(name, f) for f in ("length", "info", "landmarks", "mel")):
            digest.update(self._get(key) or b"-")
        for key in (frame_key(name, 0), frame_key(name, last)):
            digest.update(self._get(key) or b"-")
        return digest.hexdigest()
