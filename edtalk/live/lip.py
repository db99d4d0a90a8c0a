"""Mouth coefficients from streamed mel windows: Audio2Lip per window, then the offline smoothing.

Offline, `Audio2Lip.predict_chunks` smooths the raw (T, 20) track along time with a Gaussian of
`smoothing_size` taps (3), zero-padded at both ends of the clip. Frame i's smoothed row needs the
raw rows i - h .. i + h (h = size // 2), so the exact mode emits it h frames (40 ms) after its
window is ready, and zero-pads after `finish` as the offline code does at the clip's end. The
low-latency mode emits it at once, using its own raw row in place of the h future ones.

Frames whose window reads only silence (RMS below a threshold) get the raw row the network gives
for digital silence (every mel bin at its floor), so the mouth closes when speech stops even
when the line carries a little noise; where the audio is truly silent this is what the offline
path computes too.
"""

import numpy as np
import torch

from networks.audio2lip import Audio2Lip, gaussian_kernel

from .features import CFG


class StreamingLip:
    """Smoothed mouth coefficients (20,) for windows (n, 1, 80, 16) fed in order, frame by frame.

    `push` adds the windows of the next frames and says how many frames are ready; each ready
    frame is then taken in order, by `next_row` (its smoothed row) or `skip` (a dropped frame).
    Audio2Lip runs on a window only when a taken row needs it (its own frame or a neighbour), so
    the frames a slow renderer drops cost no network time either.

    exact: wait for the future raw rows (offline smoothing) or not (low latency);
    silence_rms: windows quieter than this (linear RMS of their samples, or None: never) are silent.
    """

    def __init__(self, model: Audio2Lip, device: torch.device, exact: bool, silence_rms: float | None):
        if model.training:
            raise RuntimeError("Audio2Lip needs eval mode (BatchNorm running statistics)")
        self.model, self.device, self.exact, self.silence_rms = model, device, exact, silence_rms
        self.kernel = gaussian_kernel(model.smoothing_size, model.smoothing_sigma).to(device)
        self.half = model.smoothing_size // 2
        floor = torch.full((1, 1, CFG.num_mels, CFG.window_frames), -CFG.max_abs_value, device=device)
        with torch.inference_mode():
            self.rest = model(floor)[0]  # (20,) the raw row of digital silence
        zero = torch.zeros_like(self.rest)
        # raw rows from frame next_frame - half on: a row, or the window (1, 1, 80, 16) it comes from
        self.raw: list[torch.Tensor] = [zero] * self.half  # zero padding before frame 0
        self.computed: list[bool] = [True] * self.half
        self.next_frame = 0  # the next frame to take

    @property
    def ready(self) -> int:
        """How many frames can be taken now."""
        return max(0, len(self.raw) - (2 if self.exact else 1) * self.half)

    def push(self, windows: np.ndarray, loudness: np.ndarray) -> int:
        """Add the windows of the next frames and their RMS; -> the number of frames ready."""
        quiet = np.zeros(len(windows), bool) if self.silence_rms is None else loudness < self.silence_rms
        for window, silent in zip(torch.from_numpy(windows).to(self.device), quiet):
            self.raw.append(self.rest if silent else window[None])
            self.computed.append(bool(silent))
        return self.ready

    def finish(self) -> int:
        """End of the stream: -> the frames ready (exact mode: zero-padded past the clip's end, as offline)."""
        if self.exact:
            self.raw += [torch.zeros_like(self.rest)] * self.half
            self.computed += [True] * self.half
        return self.ready

    @torch.inference_mode()
    def next_row(self) -> torch.Tensor:
        """The next ready frame's smoothed (20,) row."""
        h = self.half
        past = [self._raw(j) for j in range(h + 1)]  # raw rows i - h .. i of frame i
        future = [self._raw(j) for j in range(h + 1, 2 * h + 1)] if self.exact else past[-1:] * h
        self.skip()
        return self.kernel @ torch.stack(past + future)

    def skip(self) -> None:
        """Pass over the next ready frame (dropped: its row is never needed)."""
        if not self.ready:
            raise RuntimeError("no frame is ready")
        del self.raw[0], self.computed[0]
        self.next_frame += 1

    def _raw(self, j: int) -> torch.Tensor:
        """Raw row j of the held ones, Audio2Lip run on its window the first time it is needed (one
        window a call: a constant shape, as CPU kernels are re-planned for every new batch size)."""
        if not self.computed[j]:
            self.raw[j], self.computed[j] = self.model(self.raw[j])[0], True
        return self.raw[j]
