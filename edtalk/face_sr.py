"""Face restoration of rendered frames with GFPGAN (--face_sr), prepared as the official pipeline prepares faces.

Everything --face_sr does lives here: `load_restorer` builds the FaceRestorer a pipeline uses
(GFPGAN from the checkpoint folder, --sr_blend checked); the restorer asks edtalk.face_align for
each rendered frame's 68 landmarks and edtalk.face_paste to blend the restored face back.

For each frame: five points (eye centres, nose tip, mouth corners) from our 68 landmarks; a
similarity transform onto the FFHQ 512 template fitted as the official `FaceRestoreHelper` fits
it (OpenCV `estimateAffinePartial2D`, LMEDS); the 512x512 aligned crop (bilinear, grey border);
GFPGAN (batched, on any device, stored noise so that frames do not flicker); and the restored
face warped back into the frame upscaled x2 (Lanczos-4 background), blended with a soft mask.

Differences from the official `GFPGANer.enhance` (EDTalk's `--face_sr`), said plainly:

* landmarks come from our 68-point detector instead of RetinaFace's five points;
* the blend mask is our landmark face mask (:func:`aligned_face_mask`: jaw line and raised brows,
  dilated and feathered, as the paste-back of every crop), not facexlib's face-parsing network;
* the restored face is pasted back with the exact pixel-centre mapping of the x2 upscale (the
  official one is half an output pixel off, see :func:`inverse_matrix`);
* the official `weight` argument does nothing in this architecture (0.5 and 1.0 give identical
  images); our strength control `blend` (`--sr_blend`, default 1.0) is our own: the restored
  face is mixed with the unrestored aligned face, `blend * restored + (1 - blend) * aligned`.
"""

import functools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from .crop_geometry import face_template
from .errors import EDTalkError
from .face_align import FaceAligner
from .face_paste import face_mask_from_landmarks, paste_back
from .gfpgan import GFPGAN_FILE, load_gfpgan

FACE_SIZE = 512
# FFHQ 512 template (x, y): left eye, right eye, nose tip, left and right mouth corners (image-left first).
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float32,
)
BORDER_RGB = (132, 133, 135)  # the official grey border, (135, 133, 132) in BGR


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """(68, 2) landmarks (x, y) -> (5, 2): eye centres (36-41, 42-47), nose tip (30), mouth corners (48, 54)."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def alignment_matrix(points5: np.ndarray, face_size: int = FACE_SIZE) -> np.ndarray:
    """(2, 3) similarity transform, frame -> aligned face, fitted like the official helper (LMEDS)."""
    template = FFHQ_TEMPLATE_512 * (face_size / FACE_SIZE)
    matrix, _ = cv2.estimateAffinePartial2D(np.asarray(points5, np.float64), template, method=cv2.LMEDS)
    if matrix is None:  # degenerate points (all equal): a plain least-squares fit cannot fail the same way
        raise ValueError("cannot fit a face alignment to these five points")
    return matrix


def align_face(frame: np.ndarray, matrix: np.ndarray, face_size: int = FACE_SIZE) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame -> (face_size, face_size, 3) uint8 aligned face (bilinear, grey border)."""
    return cv2.warpAffine(frame, matrix, (face_size, face_size), borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_RGB)


def faces_to_tensor(faces: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, S, S, 3) uint8 RGB -> (B, 3, S, S) float32 in [-1, 1], as the official conversion computes it."""
    x = torch.from_numpy((np.asarray(faces) / 255.0).astype(np.float32)).permute(0, 3, 1, 2)
    return ((x - 0.5) / 0.5).to(device)


def tensor_to_faces(images: torch.Tensor) -> np.ndarray:
    """(B, 3, S, S) in [-1, 1] -> (B, S, S, 3) uint8 RGB (clamped, rounded in float32, as the official)."""
    v = (images.detach().float().clamp(-1, 1) + 1) / 2
    return np.round(v.permute(0, 2, 3, 1).cpu().numpy() * np.float32(255.0)).astype(np.uint8)


def inverse_matrix(matrix: np.ndarray, upscale: int) -> np.ndarray:
    """(2, 3) aligned face -> frame upscaled x`upscale` (pixel centres: x_up = upscale * x + (upscale - 1) / 2).

    The official helper adds upscale / 2 instead of (upscale - 1) / 2, which moves the pasted
    face half an output pixel right and down; on an identity restorer that doubles the
    difference from the upscaled frame (tests/test_gfpgan.py), so we use the exact centre mapping.
    """
    inverse = cv2.invertAffineTransform(matrix) * upscale
    inverse[:, 2] += 0.5 * (upscale - 1)
    return inverse


@functools.lru_cache(maxsize=2)
def aligned_face_mask(face_size: int = FACE_SIZE) -> np.ndarray:
    """(face_size, face_size) float32 paste-back weights of the aligned face (read-only, computed once).

    The crop template's 68 landmarks carried into the aligned face by the same five-point fit as a
    face, then face_paste.face_mask_from_landmarks: the mask of every crop's paste-back, here."""
    m = alignment_matrix(five_points(face_template()), face_size)
    mask = face_mask_from_landmarks(face_template() @ m[:, :2].T + m[:, 2], face_size)
    mask.flags.writeable = False
    return mask


def rendered_landmarks(aligner: FaceAligner, frame: np.ndarray, name: str = "rendered video") -> np.ndarray | None:
    """(68, 2) landmarks of the face in a rendered (H, W, 3) uint8 RGB frame, or None if none is usable."""
    try:
        found = aligner.landmarks(frame, name)
    except EDTalkError:  # a face too small, or fewer faces than --face_index asks: restore with the fallback
        return None
    return found[0] if found else None


class FaceRestorer:
    """Restore the face in rendered frames: (N, H, W, 3) uint8 RGB -> (N, H*upscale, W*upscale, 3).

    `model` is a GFPGAN (edtalk.load_gfpgan) on the device where it should run. Landmarks are
    (68, 2) per frame or None where no face was found; when none are passed they are detected
    on each frame with `aligner` (if given). Where a frame has none, the previous frame's points
    are used, or, before any, those of the 256 px crop template (scaled to the frame), so a video
    never fails midway. With return_aligned=True the aligned restored faces (N, 512, 512, 3) are
    returned instead of the frames. Frames are restored `batch_size` at a time; :meth:`stream`
    keeps the memory bounded for a video of any length.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        blend: float = 1.0,
        upscale: int = 2,
        batch_size: int = 4,
        return_aligned: bool = False,
        aligner: FaceAligner | None = None,
    ):
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"blend must be in [0, 1], got {blend}")
        self.model = model
        self.blend = float(blend)
        self.upscale = int(upscale)
        self.batch_size = max(1, int(batch_size))
        self.return_aligned = return_aligned
        self.aligner = aligner
        self._last_points: np.ndarray | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def reset(self) -> None:
        """Forget the previous frame's points (call between videos)."""
        self._last_points = None

    def points_for(self, landmarks: np.ndarray | None, frame_shape: tuple[int, ...]) -> np.ndarray:
        """Five points of one frame, falling back to the previous frame's, then to the template's."""
        if landmarks is not None:
            self._last_points = five_points(landmarks)
        elif self._last_points is None:
            h, w = frame_shape[:2]
            return five_points(face_template()) * np.array([w / 256.0, h / 256.0])
        return self._last_points

    @torch.no_grad()
    def restore_faces(self, faces: np.ndarray) -> np.ndarray:
        """(B, 512, 512, 3) uint8 aligned faces -> restored (B, 512, 512, 3) uint8, with the blend applied."""
        x = faces_to_tensor(faces, self.device)
        y = self.model(x).float().clamp_(-1, 1)  # stored noise (the model's default): no flicker
        if self.blend < 1.0:
            y = self.blend * y + (1.0 - self.blend) * x
        return tensor_to_faces(y)

    def restore(self, frames: np.ndarray, landmarks: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        """Restore a batch of frames (N, H, W, 3) uint8 RGB with their landmarks (N entries, or None: detect)."""
        frames = np.asarray(frames)
        if landmarks is None:
            detect = self.aligner is not None
            landmarks = [rendered_landmarks(self.aligner, f) if detect else None for f in frames]
        if len(landmarks) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(landmarks)} landmark entries")
        out = []
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start : start + self.batch_size]
            matrices = [
                alignment_matrix(self.points_for(lm, f.shape))
                for f, lm in zip(chunk, landmarks[start : start + self.batch_size])
            ]
            faces = np.stack([align_face(f, m) for f, m in zip(chunk, matrices)])
            restored = self.restore_faces(faces)
            if self.return_aligned:
                out.append(restored)
                continue
            out.append(np.stack([self.paste(f, r, m) for f, r, m in zip(chunk, restored, matrices)]))
        return np.concatenate(out) if out else np.zeros((0, *frames.shape[1:]), np.uint8)

    def stream(
        self, frames: Iterable[np.ndarray], landmarks: Iterable[np.ndarray | None] | None = None
    ) -> Iterator[np.ndarray]:
        """Frame by frame in, restored frame by frame out; `batch_size` frames held at a time.
        landmarks=None: detected on each frame with `aligner` (or the fallback points without one)."""
        if landmarks is None:
            detect = self.aligner is not None
            pairs = ((f, rendered_landmarks(self.aligner, f) if detect else None) for f in frames)
        else:
            pairs = zip(frames, landmarks, strict=True)
        batch, marks = [], []
        for frame, lm in pairs:
            batch.append(frame)
            marks.append(lm)
            if len(batch) == self.batch_size:
                yield from self.restore(np.stack(batch), marks)
                batch, marks = [], []
        if batch:
            yield from self.restore(np.stack(batch), marks)

    def paste(self, frame: np.ndarray, face: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """Blend a restored (512, 512, 3) face into the frame upscaled x`upscale`: (H*u, W*u, 3) uint8."""
        h, w = frame.shape[:2]
        size = (w * self.upscale, h * self.upscale)
        background = frame if self.upscale == 1 else cv2.resize(frame, size, interpolation=cv2.INTER_LANCZOS4)
        return paste_back(background, face, inverse_matrix(matrix, self.upscale), aligned_face_mask(face.shape[0]))


def load_restorer(
    ckpt_dir: str | Path, device: torch.device | str = "cpu", blend: float = 1.0, batch_size: int = 4
) -> FaceRestorer:
    """The restorer of --face_sr: GFPGAN (ckpt_dir/GFPGANv1.4.pth) on `device`, mixed with the
    unrestored face by `blend` (--sr_blend), faces found on each rendered frame by its own aligner.

    Raises EDTalkError naming --sr_blend when `blend` is outside [0, 1], CheckpointError (what to
    download and where) when the checkpoint is missing or not GFPGAN's."""
    if not 0 <= blend <= 1:
        raise EDTalkError(f"--sr_blend must be between 0 and 1, got {blend}")
    gfpgan = load_gfpgan(Path(ckpt_dir) / GFPGAN_FILE, device)
    return FaceRestorer(gfpgan, blend, batch_size=batch_size, aligner=FaceAligner())
