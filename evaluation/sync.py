"""LSE-C / LSE-D: lip-sync confidence and distance with SyncNet v2, computed as the standard scripts do.

Talking-head papers take these numbers from Wav2Lip's evaluation scripts, which run
`SyncNetInstance.evaluate()` of joonson/syncnet_python on the released `syncnet_v2.model`. This
module reproduces that computation step by step (see tests/fixtures/syncnet/README.md):

1. frames: 224x224 BGR, raw 0..255 floats (no scaling); audio: 16 kHz int16-scale samples;
2. MFCC with python_speech_features 0.6 defaults, in float64 (`mfcc`);
3. L = min(frames, samples // 640) and L - 5 windows: frames i..i+4 with MFCC columns 4i..4i+19,
   embedded in batches of 20 (`SyncNetScorer.embed`);
4. distances of each video window to the audio windows 15 before .. 15 after (zero vectors out of
   range), their per-offset means, and offset / LSE-C / LSE-D from those (`offset_search`).

`SyncNetScorer` also accepts our own lip-sync expert (networks/lipsync_expert.py), whose scores are reported
under their own names (`EXPERT_LABEL`): they are not comparable with SyncNet's.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.fft
import scipy.signal
import torch

from edtalk.checkpoints import read_checkpoint, strip_prefixes
from edtalk.errors import CheckpointError, EDTalkError
from networks.syncnet import SyncNetV2

SAMPLE_RATE = 16000  # Hz; SyncNet's MFCC settings assume it
SAMPLES_PER_FRAME = 640  # 16 kHz audio per 25-fps video frame
MFCC_PER_FRAME = 4  # 10-ms MFCC frames per video frame
WINDOW = 5  # video frames per SyncNet window (20 MFCC frames, 0.2 s)
FACE_SIZE = 224
VSHIFT = 15  # offsets searched: -15 .. 15 video frames
BATCH_SIZE = 20  # windows per network call in the official script (changes results by ~1e-5 only)
EXPERT_LABEL = "expert"  # metric-name prefix for scores from our trained lip-sync expert

# python_speech_features 0.6 `mfcc` defaults (16 kHz)
_FRAME_LEN, _FRAME_STEP, _NFFT = 400, 160, 512
_NFILT, _NUMCEP, _LIFTER, _PREEMPH = 26, 13, 22, 0.97


@dataclass
class SyncResult:
    """Outcome of the offset search over one clip.

    offset: video frames the audio leads by (positive: the best audio for video window i is i - offset).
    conf: LSE-C, median minus minimum of the per-offset mean distances.
    min_dist: LSE-D, the minimum per-offset mean distance.
    dists: (W, 2*vshift+1) float32, row = video window, column j = audio lag j - vshift.
    mdist: (2*vshift+1,) float32 per-offset means.
    """

    offset: int
    conf: float
    min_dist: float
    dists: np.ndarray
    mdist: np.ndarray


# ---- MFCC (python_speech_features 0.6) ---------------------------------------------------------


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] -> float64 samples on the 16-bit scale, rounded and clipped as ffmpeg's s16.

    Integer input (int16 samples, as the official script reads them) is taken as already on that scale.
    """
    audio = np.asarray(audio)
    if np.issubdtype(audio.dtype, np.integer):
        return audio.astype(np.float64)
    return np.clip(np.rint(audio.astype(np.float64) * 32768.0), -32768.0, 32767.0)


def _mel_filterbank() -> np.ndarray:
    """(26, 257) triangular filters from 0 to 8000 Hz on FFT bins floor(513 * f / 16000)."""
    mels = np.linspace(0.0, 2595 * np.log10(1 + (SAMPLE_RATE / 2) / 700.0), _NFILT + 2)
    edges = np.floor((_NFFT + 1) * (700 * (10 ** (mels / 2595.0) - 1)) / SAMPLE_RATE)
    bank = np.zeros((_NFILT, _NFFT // 2 + 1))
    for j in range(_NFILT):
        lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
        for i in range(int(lo), int(mid)):
            bank[j, i] = (i - lo) / (mid - lo)
        for i in range(int(mid), int(hi)):
            bank[j, i] = (hi - i) / (hi - mid)
    return bank


def _frames(signal: np.ndarray) -> np.ndarray:
    """Overlapping 400-sample frames every 160 samples, the last one zero-padded: (M, 400)."""
    n = len(signal)
    count = 1 if n <= _FRAME_LEN else 1 + math.ceil((n - _FRAME_LEN) / _FRAME_STEP)
    padded = np.concatenate([signal, np.zeros((count - 1) * _FRAME_STEP + _FRAME_LEN - n)])
    index = np.arange(_FRAME_LEN)[None, :] + _FRAME_STEP * np.arange(count)[:, None]
    return padded[index]


def mfcc(samples: np.ndarray) -> np.ndarray:
    """16 kHz mono samples on the 16-bit scale (n,) -> MFCC (13, M) float64, M = 1 + ceil((n - 400) / 160).

    The official script feeds int16 samples to `python_speech_features.mfcc` with its defaults;
    everything is float64 as there. Coefficient 0 is the log frame energy.
    """
    signal = np.asarray(samples, dtype=np.float64)
    emphasised = np.append(signal[0], signal[1:] - _PREEMPH * signal[:-1])
    power = np.square(np.abs(np.fft.rfft(_frames(emphasised), _NFFT))) / _NFFT
    energy = np.sum(power, axis=1)
    energy = np.where(energy == 0, np.finfo(float).eps, energy)
    fbank = power @ _mel_filterbank().T
    fbank = np.where(fbank == 0, np.finfo(float).eps, fbank)
    cepstra = scipy.fft.dct(np.log(fbank), type=2, axis=1, norm="ortho")[:, :_NUMCEP]
    cepstra = cepstra * (1 + (_LIFTER / 2.0) * np.sin(np.pi * np.arange(_NUMCEP) / _LIFTER))
    cepstra[:, 0] = np.log(energy)
    return cepstra.T


# ---- offset search ------------------------------------------------------------------------------


def offset_search(im_feat: torch.Tensor, cc_feat: torch.Tensor, vshift: int = VSHIFT) -> SyncResult:
    """Video (W, D) and audio (W, D) embeddings of the same windows -> best offset, LSE-C and LSE-D.

    Distance of video window i to audio window i + j - vshift is ||v - a + 1e-6|| (torch's
    pairwise_distance); out of range the audio embedding is the zero vector. Means run over all
    rows, padded entries included, as in the official script.
    """
    padded = torch.nn.functional.pad(cc_feat, (0, 0, vshift, vshift))
    width = 2 * vshift + 1
    rows = [
        torch.nn.functional.pairwise_distance(im_feat[[i], :].repeat(width, 1), padded[i : i + width, :])
        for i in range(len(im_feat))
    ]
    by_offset = torch.stack(rows, 1)  # (width, W): the official layout, which fixes the summation order
    mdist = torch.mean(by_offset, 1)
    min_dist, minidx = torch.min(mdist, 0)
    conf = torch.median(mdist) - min_dist  # torch.median: the lower middle value
    return SyncResult(
        offset=int(vshift - minidx),
        conf=float(conf),
        min_dist=float(min_dist),
        dists=by_offset.t().numpy(),
        mdist=mdist.numpy(),
    )


# ---- network ------------------------------------------------------------------------------------


def load_syncnet(path: str | Path) -> SyncNetV2:
    """The released `syncnet_v2.model` (a plain state dict, legacy or zip format) -> SyncNetV2 in eval mode.

    Raises CheckpointError (one line naming the file) for a missing, unreadable or foreign file.
    BatchNorm step counters may be present or not: they do not affect evaluation.
    """
    path = Path(path)
    state = read_checkpoint(path, "SyncNet weights", "the released syncnet_v2.model; see README")
    net = SyncNetV2()
    own = net.state_dict()
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a SyncNet state dict (syncnet_v2.model holds only named tensors)")
    unknown = sorted(set(state) - set(own))
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    if unknown or missing:
        what = f"unexpected key {unknown[0]}" if unknown else f"missing key {missing[0]}"
        raise CheckpointError(
            f"{path} is not syncnet_v2.model: {what} ({len(unknown)} unexpected, {len(missing)} missing)"
        )
    for key, value in state.items():
        if value.shape != own[key].shape:
            raise CheckpointError(f"{path} is not syncnet_v2.model: {key} has shape {list(value.shape)}")
        own[key].copy_(value)
    return net.eval()


def face_windows_bgr(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB faces -> (1, 3, T, 224, 224) float32 raw 0..255 BGR, as the official script feeds.

    Frames of another size are resized with cv2.resize defaults (bilinear), as Wav2Lip's script does.
    """
    bgr = [f[:, :, ::-1] for f in frames]
    if frames.shape[1:3] != (FACE_SIZE, FACE_SIZE):
        bgr = [cv2.resize(np.ascontiguousarray(f), (FACE_SIZE, FACE_SIZE)) for f in bgr]
    stacked = np.stack(bgr).astype(np.float32)  # (T, 224, 224, 3)
    return torch.from_numpy(stacked).permute(3, 0, 1, 2).unsqueeze(0).contiguous()


def face_track_crops(frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Face crops the way the official `run_pipeline.py` cuts a face track, from our landmarks.

    frames (T, H, W, 3) uint8, landmarks (T, 68, 2) (NaN where no face; filled from the nearest
    frame with one) -> (T, 224, 224, 3) uint8. The official pipeline boxes faces with S3FD; we use
    the box around the dlib landmarks (the one deliberate difference). As there, the half-size
    s = max(w, h) / 2 and the centre are median-filtered over 13 frames, the frame is padded by
    int(1.8 s) pixels of grey 110, and the crop spans rows cy - s .. cy + 1.8 s and columns
    cx - 1.4 s .. cx + 1.4 s, resized to 224x224.
    """
    valid = np.flatnonzero(~np.isnan(landmarks).any(axis=(1, 2)))
    if len(valid) == 0:
        raise EDTalkError("no face found in any frame: cannot cut a face track for SyncNet")
    nearest = valid[np.abs(np.arange(len(frames))[:, None] - valid[None, :]).argmin(axis=1)]
    points = landmarks[nearest]
    lo, hi = points.min(axis=1), points.max(axis=1)  # (T, 2) box corners
    half = scipy.signal.medfilt((hi - lo).max(axis=1) / 2, 13)
    cx = scipy.signal.medfilt((lo[:, 0] + hi[:, 0]) / 2, 13)
    cy = scipy.signal.medfilt((lo[:, 1] + hi[:, 1]) / 2, 13)
    crops = []
    for frame, s, x, y in zip(frames, half, cx, cy):
        pad = int(s * 1.8)
        padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), constant_values=110)
        my, mx = y + pad, x + pad
        face = padded[int(my - s) : int(my + s * 1.8), int(mx - s * 1.4) : int(mx + s * 1.4)]
        crops.append(cv2.resize(face, (FACE_SIZE, FACE_SIZE)))
    return np.stack(crops)


class SyncNetScorer:
    """LSE-C / LSE-D of face clips with the released SyncNet v2 (exactly the official `evaluate()`).

    weights_path: `syncnet_v2.model`; device: where the network runs (CPU float32 is the exact one).
    """

    def __init__(self, weights_path: str | Path, device: str = "cpu", batch_size: int = BATCH_SIZE):
        self.device = torch.device(device)
        self.net = load_syncnet(weights_path).to(self.device)
        self.batch_size = batch_size

    @torch.inference_mode()
    def embed(self, frames: np.ndarray, audio: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """frames (T, H, W, 3) uint8 RGB faces at 25 fps, audio (n,) float32 16 kHz in [-1, 1]
        -> video embeddings (W, 1024), audio embeddings (W, 1024), MFCC (13, M), W = min(T, n // 640) - 5."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise EDTalkError(f"SyncNet needs (T, H, W, 3) uint8 RGB frames, got {frames.dtype} {frames.shape}")
        length = min(len(frames), len(audio) // SAMPLES_PER_FRAME)
        windows = length - WINDOW
        if windows < 1:
            raise EDTalkError(f"clip too short for SyncNet: {length} frames of video with audio, needs at least 6")
        coeffs = mfcc(to_pcm16(audio))
        mfcc_t = torch.from_numpy(coeffs.astype(np.float32))[None, None]  # (1, 1, 13, M)
        video = face_windows_bgr(frames[:length])
        im_feat, cc_feat = [], []
        for first in range(0, windows, self.batch_size):
            idx = range(first, min(windows, first + self.batch_size))
            lip = torch.cat([video[:, :, i : i + WINDOW] for i in idx])  # (B, 3, 5, 224, 224)
            aud = torch.cat([mfcc_t[..., i * MFCC_PER_FRAME : i * MFCC_PER_FRAME + 20] for i in idx])  # (B, 1, 13, 20)
            im_feat.append(self.net.forward_lip(lip.to(self.device)).cpu())
            cc_feat.append(self.net.forward_aud(aud.to(self.device)).cpu())
        return torch.cat(im_feat), torch.cat(cc_feat), coeffs

    def evaluate(self, frames: np.ndarray, audio: np.ndarray, vshift: int = VSHIFT) -> SyncResult:
        """The full official result for one clip (see `embed` for the inputs)."""
        im_feat, cc_feat, _ = self.embed(frames, audio)
        return offset_search(im_feat, cc_feat, vshift)

    def score(self, frames: np.ndarray, audio: np.ndarray) -> tuple[int, float, float]:
        """(offset, LSE-C, LSE-D) of one clip: frames (T, 224, 224, 3) uint8 RGB faces at 25 fps,
        audio (n,) float32 16 kHz mono in [-1, 1]."""
        result = self.evaluate(frames, audio)
        return result.offset, result.conf, result.min_dist


class ExpertSyncScorer:
    """Lip-sync scores from our own trained expert (train/train_syncnet.py, Wav2Lip's SyncNet_color).

    Not SyncNet v2: its numbers are reported under `EXPERT_LABEL` names and are not comparable with
    published LSE-C / LSE-D. checkpoint: a training checkpoint with a 'syncnet' entry.
    """

    def __init__(self, checkpoint: str | Path, device: str = "cpu", batch_size: int = 64):
        from networks.lipsync_expert import SyncNet

        path = Path(checkpoint)
        data = read_checkpoint(path, "lip-sync expert checkpoint", "made by train/train_syncnet.py")
        if "syncnet" not in data:
            raise CheckpointError(f"{path} is not a lip-sync expert checkpoint (no 'syncnet' entry)")
        self.device = torch.device(device)
        self.net = SyncNet()
        try:
            self.net.load_state_dict(strip_prefixes(data["syncnet"]))
        except RuntimeError:
            raise CheckpointError(f"{path}: its 'syncnet' entry does not fit the lip-sync expert") from None
        self.net.to(self.device).eval()
        self.batch_size = batch_size

    @torch.inference_mode()
    def score(self, frames: np.ndarray, audio: np.ndarray, landmarks: np.ndarray, vshift: int = VSHIFT) -> dict:
        """frames (T, 256, 256, 3) uint8 RGB aligned crops at 25 fps, audio (n,) float32 16 kHz, landmarks
        (T, 68, 2) -> {expert-offset, expert-sim (mean cosine similarity at offset 0), expert-conf
        (best minus median of the per-offset mean similarities)}."""
        from data_preprocess.lmdb_store import face_boxes, image_tensor
        from edtalk.audio import melspectrogram, windows_from_mel
        from networks.lipsync_expert import lower_halves

        length = min(len(frames), len(audio) // SAMPLES_PER_FRAME)
        windows = length - WINDOW + 1
        if windows < 1:
            raise EDTalkError(f"clip too short for the lip-sync expert: {length} frames, needs at least {WINDOW}")
        mels = torch.from_numpy(windows_from_mel(melspectrogram(audio), length))  # (T, 1, 80, 16)
        images = torch.stack([image_tensor(f) for f in frames[:length]])  # (T, 3, 256, 256) in [-1, 1]
        boxes = torch.from_numpy(face_boxes(landmarks[:length]))
        faces = torch.cat(
            [
                lower_halves(
                    torch.stack([images[i : i + WINDOW] for i in range(a, min(windows, a + self.batch_size))]),
                    torch.stack([boxes[i : i + WINDOW] for i in range(a, min(windows, a + self.batch_size))]),
                )
                for a in range(0, windows, self.batch_size)
            ]
        )  # (W, 15, 48, 96)
        means = []
        for lag in range(-vshift, vshift + 1):
            rows = [i for i in range(windows) if 0 <= i + lag < length]
            sims = self.net(mels[[i + lag for i in rows]].to(self.device), faces[rows].to(self.device))
            means.append(float(sims.mean()) if rows else float("nan"))
        means = np.array(means)
        best = int(np.nanargmax(means))
        return {
            f"{EXPERT_LABEL}-offset": vshift - best,
            f"{EXPERT_LABEL}-sim": float(means[vshift]),
            f"{EXPERT_LABEL}-conf": float(means[best] - np.nanmedian(means)),
        }
