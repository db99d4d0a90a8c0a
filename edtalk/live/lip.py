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
    """Smoothed (n, 20) mouth coefficients for windows (n, 1, 80, 16) fed in order.

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
        self.raw = torch.zeros(self.half, self.rest.shape[0], device=device)  # zero padding before frame 0
        self.next_frame = 0  # the next frame to emit; raw[0] is raw row next_frame - half

    @torch.inference_mode()
    def push(self, windows: np.ndarray, loudness: np.ndarray) -> torch.Tensor:
        """Add the windows of the next frames and their RMS; -> the smoothed rows now complete (m, 20)."""
        if len(windows):
            # one window a call: a constant shape (CPU kernels are re-planned for every new batch size)
            raw = torch.cat([self.model(w[None]) for w in torch.from_numpy(windows).to(self.device)])
            if self.silence_rms is not None:
                quiet = torch.from_numpy(loudness < self.silence_rms).to(self.device)
                raw = torch.where(quiet[:, None], self.rest, raw)
            self.raw = torch.cat([self.raw, raw])
        ready = len(self.raw) - 2 * self.half if self.exact else len(self.raw) - self.half
        return self._emit(max(0, ready))

    @torch.inference_mode()
    def finish(self) -> torch.Tensor:
        """The rows still held back (exact mode: zero-padded past the clip's end, as offline)."""
        if not self.exact:
            return self._emit(0)
        self.raw = torch.cat([self.raw, self.raw.new_zeros(self.half, self.raw.shape[1])])
        return self._emit(max(0, len(self.raw) - 2 * self.half))

    def _emit(self, count: int) -> torch.Tensor:
        """Smooth and return the next `count` rows; keep the raw rows later frames still need."""
        h, rows = self.half, []
        for i in range(count):
            past = self.raw[i : i + h + 1]  # raw rows i - h .. i of the emitted frame i
            future = self.raw[i + h + 1 : i + 2 * h + 1] if self.exact else past[-1:].expand(h, -1)
            rows.append(self.kernel @ torch.cat([past, future]))
        self.raw = self.raw[count:]
        self.next_frame += count
        return torch.stack(rows) if rows else torch.zeros(0, self.rest.shape[0], device=self.device)
