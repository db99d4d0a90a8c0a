"""Identity similarity of generated and reference faces: CSIM (ArcFace) or, offline, dlib's face descriptor.

CSIM is the cosine similarity of ArcFace embeddings. The ArcFace network is a user-supplied ONNX
file (e.g. insightface's `w600k_r50.onnx`), run with onnxruntime on 112x112 faces aligned by the
five points ArcFace was trained with (eye centres, nose tip, mouth corners, from our dlib 68
landmarks), RGB scaled to [-1, 1]. Without it, `DlibIdentity` gives the cosine similarity of
dlib's face-recognition ResNet descriptors (shipped by face_recognition_models), reported as
`ID-dlib`: a different network, so not comparable with published CSIM.
"""

import importlib.util
from pathlib import Path

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

from edtalk.errors import CheckpointError, EDTalkError

ARCFACE_SIZE = 112
# insightface's five reference points for 112x112 ArcFace crops (x, y)
ARCFACE_POINTS = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """dlib (68, 2) landmarks -> (5, 2): left eye centre, right eye centre, nose tip, mouth corners."""
    return np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[30], landmarks[48], landmarks[54]])


def arcface_crop(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame and its (68, 2) landmarks -> (112, 112, 3) uint8 ArcFace-aligned face."""
    tform = SimilarityTransform.from_estimate(five_points(landmarks), ARCFACE_POINTS)
    return cv2.warpAffine(frame, tform.params[:2], (ARCFACE_SIZE, ARCFACE_SIZE), borderValue=0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class ArcFaceIdentity:
    """ArcFace embeddings from an ONNX model: `embed(frame, landmarks) -> (D,)` float32."""

    name = "CSIM"

    def __init__(self, onnx_path: str | Path):
        import onnxruntime

        path = Path(onnx_path)
        if not path.is_file():
            raise CheckpointError(f"ArcFace model not found: {path} (an ONNX file, e.g. insightface's w600k_r50.onnx)")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception:  # onnxruntime raises its own exception types for foreign files
            raise CheckpointError(f"cannot read ArcFace model {path}: not an ONNX model") from None
        self.input_name = self.session.get_inputs()[0].name

    def embed(self, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        face = arcface_crop(frame, landmarks).astype(np.float32)
        blob = ((face - 127.5) / 127.5).transpose(2, 0, 1)[None]  # (1, 3, 112, 112) RGB in [-1, 1]
        return self.session.run(None, {self.input_name: blob})[0][0]


class DlibIdentity:
    """dlib's 128-d face-recognition descriptor (offline fallback): `embed(frame, landmarks) -> (128,)`."""

    name = "ID-dlib"

    def __init__(self):
        import dlib

        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None:
            raise EDTalkError("the offline identity score needs the face_recognition_models package")
        model = Path(spec.submodule_search_locations[0]) / "models" / "dlib_face_recognition_resnet_model_v1.dat"
        self._dlib = dlib
        self.net = dlib.face_recognition_model_v1(str(model))

    def embed(self, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        dlib = self._dlib
        x0, y0 = landmarks.min(axis=0)
        x1, y1 = landmarks.max(axis=0)
        rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks])
        return np.asarray(self.net.compute_face_descriptor(np.ascontiguousarray(frame), shape))
