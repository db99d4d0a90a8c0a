"""Face detection and 68-point landmarks (dlib), and the choice of the face to animate.

FaceAligner finds the faces of an image or of a video's frames, fits their landmarks and crops the chosen one to the
networks' 256x256 crop (edtalk.crop_geometry: the template and the similarity transform; edtalk.face_paste: the way
back into the frame).

Faces of any size. dlib's detector reliably finds faces from ~60 px wide (outer landmarks) in the image it is given. It
first runs on a copy shrunk to 640 px (in a 12 MP photo: faces of ~375 px and more); only when that shows no face does
it run again at 2.5x that scale and then at full resolution (images over 16 MP: at 16 MP), so any face of 64 px or more
is found. The boxes are scaled back and the landmarks are always fitted on the full-resolution image. Measured on this
project's 2-core CPU (median of 3, dlib 20.0): the 640 px pass takes 0.03 s (4K frame) / 0.06 s (12 MP photo) with the
resize; a 4K frame with no face 1.1 s in all, with a 120 px face 0.22 s, with a 68 px face 1.1 s; a 12 MP photo with no
face 1.4-2.4 s, with a 120-200 px face 0.3 s, with a 68 px face 1.5-2.1 s. In a video (frames passed with the video's
name) the next frames are searched only around the faces of the previous one, at the scale that found them: ~0.03 s a
frame for a 100 px face in 4K or 12 MP frames, against ~1.1-1.7 s for the first frame.

Choosing a face. Each detection is re-scored by the detector with the face resized to VERIFY_BOX px (raw scores depend
on the scale where a face was found; this confidence is comparable across sizes) and its landmarks are fitted to the
template. It counts as a face when the confidence is at least MIN_CONFIDENCE and the landmarks lie within MAX_RESIDUAL
crop px (RMS) of the template. Faces are numbered left to right (face_index / --face_index picks one); by default the
one with the highest quality = confidence - RESIDUAL_WEIGHT * residual among those large enough is used (in a video:
the face nearest the one used on the previous frame). Measured: real faces score 1.3-2.9 (residual 1-7 px), the mission
patch on the sample astronaut's suit 0.0-0.1 (residual 8-13 px), so the sample gives one face. With no plausible face,
the best detection still re-found at a standard size (confidence >= FALLBACK_CONFIDENCE) is used.

Minimum face size: 64 px between the outer landmarks. The template's face is ~134 px wide in the 256x256 crop, so a 64
px face is upscaled 2.1x: the crop then carries the detail of a ~122 px image, under half the resolution the networks
were trained on, and at that size a landmark error of 1 px is already ~2 % of the face (the crop jitters). Smaller
faces get FaceTooSmallError.
"""

import functools
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .crop_geometry import FIT_POINTS, face_template, similarity_transform, template_width, warp
from .errors import EDTalkError

log = logging.getLogger(__name__)

# Choosing among faces (see the module docstring).
MIN_FACE_SIZE = 64  # px between the outer landmarks: the crop would upscale a smaller face more than 2x
MIN_CONFIDENCE = 0.5  # detector score at VERIFY_BOX px below which a detection does not count as a face
MAX_RESIDUAL = 12.0  # crop px: landmarks further than this from the template are not a face's
RESIDUAL_WEIGHT = 0.1  # quality = confidence - RESIDUAL_WEIGHT * residual
VERIFY_BOX = 120  # px: detections are re-scored with the face at this size
FALLBACK_CONFIDENCE = 0.0  # with no plausible face, the best detection still used if at least this
# Searching at higher resolution when the shrunk copy shows no face.
ESCALATION_STEP = 2.5  # scale factor between detection passes
DETECT_MAX_PIXELS = 16_000_000  # largest image dlib searches (12 MP photos and 4K frames: full resolution)


class NoFaceError(EDTalkError):
    """No face was found in an image or video."""


class FaceIndexError(EDTalkError):
    """--face_index asks for a face that is not there."""


class FaceTooSmallError(EDTalkError):
    """The face is too small for the networks' 256x256 crop."""


@dataclass
class AlignedFace:
    """crop: (256, 256, 3) uint8; matrix: crop -> image (3, 3); faces: how many faces were found."""

    crop: np.ndarray
    matrix: np.ndarray
    faces: int


@dataclass
class Face:
    """One detected face. box: (x0, y0, x1, y1) in image pixels; landmarks: (68, 2) (x, y);
    matrix: its crop -> image similarity; confidence: the detector's score re-measured with the
    face at VERIFY_BOX px (comparable between faces of any size; -1 when not re-found);
    residual: RMS distance (crop pixels) of the fitted landmarks 0-46 from the template."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    matrix: np.ndarray
    confidence: float
    residual: float

    @property
    def size(self) -> float:
        """Face width in image pixels: the distance between the outer landmarks (0 and 16) of the
        template fitted to the face (its crop is an upscale of template width / size)."""
        return float(np.hypot(self.matrix[0, 0], self.matrix[1, 0])) * template_width()

    @property
    def centre_x(self) -> float:
        return (self.box[0] + self.box[2]) / 2

    @property
    def centre_y(self) -> float:
        return (self.box[1] + self.box[3]) / 2

    @property
    def plausible(self) -> bool:
        return self.confidence >= MIN_CONFIDENCE and self.residual <= MAX_RESIDUAL

    @property
    def quality(self) -> float:
        """What the default choice maximises: confidence, less a penalty for landmarks off the template."""
        return self.confidence - RESIDUAL_WEIGHT * self.residual


@dataclass
class _Track:
    """Where the faces of the previous frame of a video (`name`) were found."""

    name: str
    shape: tuple
    scale: float  # detection scale that found them
    escalated: bool  # the shrunk-copy pass found nothing
    boxes: list
    chosen: float | None  # centre x of the face used


class FaceAligner:
    """dlib HOG face detector + 68-point landmark predictor, loaded on first use.

    The models come from the `dlib-bin` and `face_recognition_models` packages (offline).
    Detection runs on a copy whose longer side is at most `detect_max_side` pixels, then, only when
    that finds no face (or fewer than `face_index` needs), at larger scales up to full resolution
    (at most `detect_max_pixels`); landmarks are always predicted on the full-resolution image.
    face_index: use the N-th face from the left (None: the clearest, see module docstring).
    min_face_size: smallest usable face width (outer landmarks), in pixels.
    """

    def __init__(
        self,
        detect_max_side: int = 640,
        face_index: int | None = None,
        min_face_size: float = MIN_FACE_SIZE,
        detect_max_pixels: int = DETECT_MAX_PIXELS,
    ):
        if face_index is not None and face_index < 0:
            raise EDTalkError(f"--face_index must be 0 or more (faces are numbered left to right), got {face_index}")
        self.detect_max_side = detect_max_side
        self.face_index = face_index
        self.min_face_size = min_face_size
        self.detect_max_pixels = detect_max_pixels
        self._detector = self._predictor = None
        self._track: _Track | None = None
        self._warned: set[str] = set()

    def _models(self):
        if self._detector is None:
            self._detector, self._predictor = _dlib_models()
        return self._detector, self._predictor

    # ---- detection -------------------------------------------------------------------------------

    def scales(self, shape: tuple) -> list[float]:
        """Detection scales tried in turn for an image of `shape`: the shrunk copy, then larger."""
        h, w = shape[:2]
        top = min(1.0, float(np.sqrt(self.detect_max_pixels / (h * w))))
        scale = min(1.0, self.detect_max_side / max(h, w))
        out = [scale]
        while scale < top:
            scale = min(top, scale * ESCALATION_STEP)
            if top / scale < 1.5:  # a last step this small would cost nearly as much as the full one
                scale = top
            out.append(scale)
        return out

    def _run(self, image: np.ndarray, scale: float, offset=(0, 0), small_ok: bool = True) -> list[tuple[tuple, float]]:
        """dlib detections (box in the coordinates of `image` + offset, score) at one scale;
        small_ok: search a small image (<= 512 px) at twice its size (dlib finds faces down to ~40 px there)."""
        detector, _ = self._models()
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=_interp(scale))
        upsample = 1 if small_ok and max(small.shape[:2]) <= 512 else 0
        rects, scores, _ = detector.run(np.ascontiguousarray(small), upsample, 0.0)
        return [(_unscale(r, scale, offset), s) for r, s in zip(rects, scores)]

    def _verify(self, image: np.ndarray, box: tuple) -> tuple[float, tuple]:
        """(score, box) of the face in `box` detected again at VERIFY_BOX px; (-1, box) if not re-found."""
        detector, _ = self._models()
        x0, y0, x1, y1 = box
        width = max(x1 - x0, 1.0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        h, w = image.shape[:2]
        rx0, ry0 = int(max(0, cx - 1.5 * width)), int(max(0, cy - 1.5 * width))
        rx1, ry1 = int(min(w, cx + 1.5 * width)), int(min(h, cy + 1.5 * width))
        f = VERIFY_BOX / width
        roi = cv2.resize(image[ry0:ry1, rx0:rx1], None, fx=f, fy=f, interpolation=_interp(f))
        rects, scores, _ = detector.run(np.ascontiguousarray(roi), 0, -1.0)
        best = (-1.0, box)
        for r, s in zip(rects, scores):
            found = _unscale(r, f, (rx0, ry0))
            near = abs((found[0] + found[2]) / 2 - cx) < width / 3 and abs((found[1] + found[3]) / 2 - cy) < width / 3
            if near and 0.5 < (found[2] - found[0]) / width < 2 and s > best[0]:
                best = (float(s), found)
        return best

    def _face(self, image: np.ndarray, box: tuple) -> Face:
        confidence, box = self._verify(image, box)
        points = self.shape(image, box)
        matrix = similarity_transform(points)
        inverse = np.linalg.inv(matrix)
        in_crop = points[FIT_POINTS] @ inverse[:2, :2].T + inverse[:2, 2]
        residual = float(np.sqrt(((in_crop - face_template()[FIT_POINTS]) ** 2).sum(1).mean()))
        return Face(tuple(float(v) for v in box), points, matrix, confidence, residual)

    def _search(self, image: np.ndarray, scale: float, region: tuple | None = None) -> list[Face]:
        """Every detection at one scale (in `region` (x0, y0, x1, y1) only, if given), verified."""
        if region is None:
            found = self._run(image, scale)
        else:
            x0, y0, x1, y1 = region
            found = self._run(image[y0:y1, x0:x1], scale, (x0, y0), small_ok=False)
        faces = []
        for box, _ in found:
            face = self._face(image, box)
            twin = next((i for i, f in enumerate(faces) if _distance(f, face) < face.size / 3), None)
            if twin is None:
                faces.append(face)
            elif face.quality > faces[twin].quality:
                faces[twin] = face
        return faces

    def faces(self, image: np.ndarray, name: str | None = None) -> list[Face]:
        """The faces in an (H, W, 3) uint8 RGB image, left to right.

        Only plausible faces are listed (see module docstring); when there are none, the best
        implausible candidate alone. `name` (a video's path, the same for all its frames) lets
        consecutive frames of a video start the search where the previous frame's faces were.
        """
        need = 1 if self.face_index is None else self.face_index + 1
        track = self._track if name is not None else None
        if track is not None and (track.name != name or track.shape != image.shape):
            track = self._track = None
        if track is not None:  # later frames of a video: look for as many faces as the first frames had
            need = min(need, len(track.boxes))
        best: tuple[list[Face], float, bool] | None = None
        rejected: list[Face] = []
        if track is not None and track.escalated:
            found = self._search(image, track.scale, _region(track.boxes, image.shape))
            good = [f for f in found if f.plausible]
            if len(good) >= max(need, len(track.boxes)):
                best = (good, track.scale, True)
        if best is None:
            for k, scale in enumerate(self.scales(image.shape)):
                found = self._search(image, scale)
                good = [f for f in found if f.plausible]
                rejected += [f for f in found if not f.plausible]
                if good and (best is None or len(good) > len(best[0])):
                    best = (good, scale, k > 0)
                if len(good) >= need:
                    break
        if best is None:
            if name is not None:
                self._track = None
            rejected = [f for f in rejected if f.confidence >= FALLBACK_CONFIDENCE]
            return [max(rejected, key=lambda f: f.quality)] if rejected else []
        good, scale, escalated = best
        good = sorted(good, key=lambda f: f.centre_x)
        if name is not None:
            chosen = track.chosen if track is not None else None
            self._track = _Track(name, image.shape, scale, escalated, [f.box for f in good], chosen)
        return good

    def _choose(self, faces: list[Face], name: str) -> int:
        """Index (left to right) of the face to use; raises FaceIndexError / FaceTooSmallError."""
        if self.face_index is not None and self.face_index >= len(faces) == 1:
            # one face (e.g. a driving video when --face_index picks a face of the source): use it
            if name not in self._warned:
                self._warned.add(name)
                log.warning("found one face in %s; using it (--face_index %d does not apply)", name, self.face_index)
            index = 0
        elif self.face_index is not None:
            if self.face_index >= len(faces):
                raise FaceIndexError(
                    f"--face_index {self.face_index} is out of range: found {len(faces)} "
                    f"face{'s' if len(faces) != 1 else ''} in {name} (numbered 0 to {len(faces) - 1} from the left)"
                )
            index = self.face_index
        else:
            usable = [i for i, f in enumerate(faces) if f.size >= self.min_face_size] or list(range(len(faces)))
            track = self._track
            if track is not None and track.name == name and track.chosen is not None:  # a video: keep the same face
                index = min(usable, key=lambda i: abs(faces[i].centre_x - track.chosen))
            else:
                index = max(usable, key=lambda i: faces[i].quality)
        face = faces[index]
        if face.size < self.min_face_size:
            raise FaceTooSmallError(
                f"the face in {name} is too small: {face.size:.0f} px wide (between the outer landmarks); "
                f"the minimum is {self.min_face_size:.0f} px"
            )
        if self._track is not None and self._track.name == name:
            self._track.chosen = face.centre_x
        return index

    def _warn_several(self, faces: list[Face], index: int, name: str) -> None:
        how = "--face_index" if self.face_index is not None else "the clearest"
        last = len(faces) - 1
        message = "found %d faces in %s; using face %d (%s; faces are numbered 0 to %d from the left): %s"
        log.warning(message, len(faces), name, index, how, last, "choose another with --face_index")

    # ---- public API ------------------------------------------------------------------------------

    def boxes(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (x0, y0, x1, y1) in an (H, W, 3) uint8 RGB image, best first."""
        faces = sorted(self.faces(image), key=lambda f: -f.quality)
        return [tuple(int(round(v)) for v in f.box) for f in faces]

    def shape(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """(68, 2) landmarks (x, y) of the face in `box` (x0, y0, x1, y1)."""
        import dlib

        _, predictor = self._models()
        parts = predictor(np.ascontiguousarray(image), dlib.rectangle(*(int(round(v)) for v in box))).parts()
        return np.array([[p.x, p.y] for p in parts], dtype=np.float64)

    def landmarks(self, image: np.ndarray, name: str | None = None) -> list[np.ndarray]:
        """(68, 2) landmarks of the faces in an (H, W, 3) uint8 RGB image, the one to use first.

        For video frames pass the video's path as `name`: the search then starts where the previous
        frame's faces were, the same face is followed, and a several-faces warning is given once.
        Raises FaceIndexError / FaceTooSmallError (naming `name`) like align().
        """
        faces = self.faces(image, name)
        if not faces:
            return []
        label = "image" if name is None else name
        index = self._choose(faces, label)
        if len(faces) > 1 and name is not None and name not in self._warned:
            self._warned.add(name)
            self._warn_several(faces, index, name)
        rest = sorted((f for i, f in enumerate(faces) if i != index), key=lambda f: -f.quality)
        return [faces[index].landmarks] + [f.landmarks for f in rest]

    def align(self, image: np.ndarray, name: str = "image") -> AlignedFace:
        """Crop the chosen face of an image to 256x256; raises NoFaceError, FaceIndexError or
        FaceTooSmallError naming `name`."""
        faces = self.faces(image)
        if not faces:
            top = self.scales(image.shape)[-1]
            smallest = self.min_face_size / top
            missed = f" (searched at {top:.0%} of its size: faces under {smallest:.0f} px may be missed)"
            raise NoFaceError(f"no face found in {name}" + (missed if top < 1 else ""))
        index = self._choose(faces, name)
        if len(faces) > 1:
            self._warn_several(faces, index, name)
        matrix = faces[index].matrix
        return AlignedFace(crop=warp(image, matrix), matrix=matrix, faces=len(faces))


@functools.lru_cache(maxsize=1)
def _dlib_models():
    """(HOG face detector, 68-point shape predictor), loaded once per process (~1.5 s)."""
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise EDTalkError("face alignment needs the face_recognition_models package (pip install -r requirements.txt)")
    path = Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path))


def _unscale(rect, scale: float, offset: tuple) -> tuple[float, float, float, float]:
    """A dlib rectangle found in an image resized by `scale` (then cropped at `offset`) in original pixels."""
    ox, oy = offset
    return (
        rect.left() / scale + ox,
        rect.top() / scale + oy,
        (rect.right() + 1) / scale + ox,
        (rect.bottom() + 1) / scale + oy,
    )


def _distance(a: Face, b: Face) -> float:
    return float(np.hypot(a.centre_x - b.centre_x, a.centre_y - b.centre_y))


def _interp(scale: float) -> int:
    return cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR


def _region(boxes: list[tuple], shape: tuple) -> tuple[int, int, int, int]:
    """The boxes' bounding box, widened by the largest box's width on every side, inside the image."""
    b = np.array(boxes)
    pad = (b[:, 2] - b[:, 0]).max()
    h, w = shape[:2]
    return (
        int(max(0, b[:, 0].min() - pad)),
        int(max(0, b[:, 1].min() - pad)),
        int(min(w, b[:, 2].max() + pad)),
        int(min(h, b[:, 3].max() + pad)),
    )
