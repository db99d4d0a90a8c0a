"""Causal audio features: the offline mel windows (edtalk/audio.py), computed as the audio arrives.

Offline, video frame i (25 fps, samples [640 i, 640 (i + 1)) at 16 kHz) is driven by a window of
16 mel frames (200 ms) starting at mel frame s = `audio.window_start(i)` (about 3.2 i - 6.4), and
mel frame m is the STFT of samples [200 m - 400, 200 m + 400) (an 800-sample window centred on
200 m, reflect-padded at the clip's start). The last sample frame i's window reads is therefore
200 (s + 15) + 400, which lies up to 1560 samples (97.5 ms) past the end of frame i's own span
(1480 samples, 92.5 ms, for every frame from the third on). That is the exact look-ahead.

`StreamingMel.push` returns the window of every frame whose audio is complete: in the exact mode
they equal the offline windows of the whole clip (the same float64 arithmetic on the same
samples), whatever the chunking. In the low-latency mode (look-ahead 0) frame i is ready as
soon as its own span has arrived: mel frames that would need later samples are replaced by the
last complete one (what the offline windows do at a clip's end), so each window depends only on
audio up to the end of its frame, again whatever the chunking.

The mel product runs in numpy's BLAS (OpenBLAS), which starts its own threads for all but the
smallest products; those threads then busy-wait for more work while torch's threads render the
frames, on the same cores. Called every few frames, as a live stream does, that halved the
network speed on 2 cores (measured: the narrow test generator, 6.3 against 14.5 frames/s).
So the streaming mel limits numpy's BLAS to one thread while it runs (threadpoolctl).
"""

import numpy as np
from threadpoolctl import ThreadpoolController

from .. import audio as audio_io

CFG = audio_io.DEFAULT
FPS = 25.0
FRAME_SAMPLES = int(CFG.sample_rate / FPS)  # 640 samples per video frame
EXACT_LOOKAHEAD = 1560  # samples: the most any frame's window reads past the end of its own span
LOW_LOOKAHEAD = 0


class SampleBuffer:
    """The stream's samples so far, indexed by absolute sample number, keeping only a recent tail.

    Behaves as the whole clip does for `audio.mel_frames` (len and integer-array indexing) as long
    as no sample before `offset` is asked for. `length` is what `len` reports: the samples
    received (no reflection at the end is ever needed for complete frames), or at the end of the
    stream the clip's length.
    """

    def __init__(self):
        self.samples = np.zeros(0, np.float32)
        self.offset = 0  # absolute index of samples[0]
        self.length = 0

    @property
    def received(self) -> int:
        return self.offset + len(self.samples)

    def append(self, samples: np.ndarray) -> None:
        self.samples = np.concatenate([self.samples, samples])
        self.length = self.received

    def drop_before(self, index: int) -> None:
        """Forget samples before absolute index `index` (they will not be read again)."""
        cut = min(max(0, index - self.offset), len(self.samples))
        self.samples = self.samples[cut:]
        self.offset += cut

    def span(self, lo: int, hi: int) -> np.ndarray:
        """Samples lo..hi-1, clipped to what the buffer holds."""
        lo, hi = max(lo, self.offset), min(hi, self.received)
        return self.samples[lo - self.offset : max(lo, hi) - self.offset]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return self.samples[index - self.offset]


def mel_limit(frame: int, lookahead: int) -> int:
    """The last mel frame frame `frame`'s window may use: the last one whose samples end within
    `lookahead` samples past the frame's own span (the exact look-ahead allows every one)."""
    return (FRAME_SAMPLES * (frame + 1) + lookahead - CFG.n_fft // 2) // CFG.hop_size


def window_mels(frame: int, lookahead: int, num_mel: int | None = None) -> np.ndarray:
    """(16,) mel-frame indices of frame `frame`'s window: clamped at 0, at the look-ahead limit and,
    at the end of a clip of `num_mel` mel frames, at its last (as the offline windows)."""
    idx = audio_io.window_start(frame, FPS, CFG) + np.arange(CFG.window_frames)
    top = mel_limit(frame, lookahead) if num_mel is None else min(mel_limit(frame, lookahead), num_mel - 1)
    return np.clip(idx, 0, top)


def samples_needed(frame: int, lookahead: int) -> int:
    """How many samples of the stream frame `frame`'s window reads (its last mel frame's end)."""
    return int(window_mels(frame, lookahead).max()) * CFG.hop_size + CFG.n_fft // 2


class StreamingMel:
    """Mel windows (n, 1, 80, 16) float32, one per 25-fps frame, from 16 kHz audio in chunks.

    lookahead: EXACT_LOOKAHEAD (the offline windows) or LOW_LOOKAHEAD (each window from audio up to
    the end of its own frame). With each window comes the RMS of the samples it reads.
    """

    def __init__(self, lookahead: int = EXACT_LOOKAHEAD):
        self.lookahead = lookahead
        self.buffer = SampleBuffer()
        self.next_frame = 0  # the first frame whose window has not been returned
        self.blas = ThreadpoolController().select(user_api="blas")  # see the module docstring

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add 16 kHz samples; -> (windows (n, 1, 80, 16) float32, peak RMS (n,) of the audio each reads)."""
        self.buffer.append(np.asarray(samples, np.float32))
        count = 0
        while samples_needed(self.next_frame + count, self.lookahead) <= self.buffer.received:
            count += 1
        return self._windows(count, None)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """The windows of the remaining frames of the clip as the offline path cuts it (whole
        frames only; past its end the last mel frame repeats)."""
        frames = self.buffer.received // FRAME_SAMPLES
        self.buffer.length = frames * FRAME_SAMPLES
        return self._windows(max(0, frames - self.next_frame), audio_io.num_mel_frames(self.buffer.length, CFG))

    def _windows(self, count: int, num_mel: int | None) -> tuple[np.ndarray, np.ndarray]:
        first = self.next_frame
        if count == 0:
            return np.zeros((0, 1, CFG.num_mels, CFG.window_frames), np.float32), np.zeros(0)
        idx = np.stack([window_mels(i, self.lookahead, num_mel) for i in range(first, first + count)])
        lo, hi = int(idx.min()), int(idx.max()) + 1
        with self.blas.limit(limits=1):
            mel = audio_io.mel_frames(self.buffer, lo, hi, CFG)
        windows = np.ascontiguousarray(mel[idx - lo].transpose(0, 2, 1)[:, None].astype(np.float32))
        loudness = np.array([self._rms(row) for row in idx])
        self.next_frame += count
        keep = int(window_mels(self.next_frame, self.lookahead).min()) * CFG.hop_size - CFG.n_fft // 2 - 1
        self.buffer.drop_before(keep)
        return windows, loudness

    def _rms(self, mels: np.ndarray) -> float:
        """RMS of the samples under the mel frames `mels` (the audio a window reads)."""
        half = CFG.n_fft // 2
        span = self.buffer.span(int(mels.min()) * CFG.hop_size - half, int(mels.max()) * CFG.hop_size + half)
        return float(np.sqrt(np.mean(np.square(span, dtype=np.float64)))) if len(span) else 0.0
