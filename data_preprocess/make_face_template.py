#!/usr/bin/env python3
"""Build our 68-point face template (edtalk/assets/face_template_68.npy) for the 256x256 crop.

    python data_preprocess/make_face_template.py [--media tests/fixtures/media]

The official crop uses a template we do not ship. We rebuild the same geometry: dlib 68-point
landmarks on already aligned 256x256 crops (an image and every frame of a video) are brought
together by similarity transforms (Procrustes) and averaged; the mean shape is then placed by a
least-squares similarity so that its eye centres, nose tip, mouth corners, inner-mouth centre and
chin land where the official crop puts them.
"""

import argparse
from pathlib import Path

import numpy as np
from skimage.transform import SimilarityTransform

from edtalk.crop_geometry import TEMPLATE_PATH
from edtalk.face_align import FaceAligner
from edtalk.video_io import iter_frames, read_image

DEFAULT_MEDIA = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "media"

# Official crop geometry (x, y) in the 256x256 frame: right-eye centre, left-eye centre, nose tip,
# mouth corners, inner-mouth centre, chin.
ANCHORS = np.array([[106.3, 113.0], [165.5, 113.5], [143, 143], [112, 180], [161, 180], [138.6, 179.6], [135, 224]])


def anchor_points(shape: np.ndarray) -> np.ndarray:
    return np.stack(
        [shape[36:42].mean(0), shape[42:48].mean(0), shape[30], shape[48], shape[54], shape[60:68].mean(0), shape[8]]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--media", default=str(DEFAULT_MEDIA), help="folder with aligned crops (identity_source.jpg, pose_source1.mp4)"
    )
    args = parser.parse_args()
    media = Path(args.media)
    aligner = FaceAligner()
    images = [read_image(media / "identity_source.jpg")] + list(iter_frames(media / "pose_source1.mp4"))
    shapes = [faces[0] for faces in map(aligner.landmarks, images) if len(faces) == 1]
    reference = shapes[0]
    mean = np.mean([SimilarityTransform.from_estimate(s, reference)(s) for s in shapes], axis=0)
    placed = SimilarityTransform.from_estimate(anchor_points(mean), ANCHORS)(mean)
    residual = np.abs(anchor_points(placed) - ANCHORS).max()
    np.save(TEMPLATE_PATH, placed.astype(np.float32))
    print(f"{len(shapes)} faces averaged; anchors within {residual:.1f} px; wrote {TEMPLATE_PATH}")


if __name__ == "__main__":
    main()
