"""Face detection at any size (issue 12, item 1): small faces in 12 MP photos and 4K frames, the
choice among several faces, --face_index, and the minimum face size."""

import logging

import cv2
import numpy as np
import pytest

from edtalk import crop_geometry, face_align
from edtalk.cli import parser
from edtalk.errors import EDTalkError
from edtalk.video_io import read_image

from .conftest import MEDIA, ROOT

IDENTITY = MEDIA / "identity_source.jpg"  # one face, 128 px between the outer landmarks
ASTRONAUT = ROOT / "test_data" / "astronaut.jpg"  # one face (93 px) and a mission patch on the suit


@pytest.fixture(scope="module")
def aligner():
    return face_align.FaceAligner()


@pytest.fixture(scope="module")
def identity(aligner):
    """(image, its aligned face) of the identity photo, as found at its own size."""
    image = read_image(IDENTITY)
    return image, aligner.faces(image)[0]


@pytest.fixture(scope="module")
def astronaut_head():
    """The astronaut's head without the suit (its face ~93 px wide)."""
    return read_image(ASTRONAUT)[20:240, 110:330]


def canvas(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour-noise background of (h, w) pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (max(2, h // 60), max(2, w // 60), 3), dtype=np.uint8)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)


def paste(image: np.ndarray, face: np.ndarray, scale: float, x: int, y: int) -> np.ndarray:
    small = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    out = image.copy()
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def test_search_plan_reaches_full_resolution_for_12mp_and_4k(aligner):
    for shape in [(3000, 4000), (2160, 3840), (4000, 3000)]:
        scales = aligner.scales(shape)
        assert scales[0] == pytest.approx(640 / max(shape)) and scales[-1] == 1.0
        assert len(scales) == 3  # the shrunk copy, ~1600 px, full resolution
    assert aligner.scales((512, 512)) == [1.0]
    assert aligner.scales((8000, 6000))[-1] == pytest.approx(np.sqrt(16e6 / 48e6))  # capped at 16 MP


@pytest.mark.parametrize(
    "shape, width, where",
    [((3000, 4000), 120, (0.71, 0.63)), ((2160, 3840), 110, (0.12, 0.2)), ((3000, 4000), 68, (0.3, 0.8))],
    ids=["12MP-120px", "4K-110px", "12MP-68px"],
)
def test_small_face_in_a_large_image_is_found_and_aligned_like_the_original(aligner, identity, shape, width, where):
    image, original = identity
    s = width / original.size
    h, w = shape
    x, y = int(where[0] * w), int(where[1] * h)
    big = paste(canvas(h, w), image, s, x, y)
    face = aligner.align(big, "big.jpg")
    assert face.faces == 1
    # The same face, moved and scaled: the crop matrix is the original's in the big image's coordinates.
    expected = np.array([[s, 0, x], [0, s, y], [0, 0, 1]]) @ original.matrix
    got, want = crop_geometry.matrix_params(face.matrix), crop_geometry.matrix_params(expected)
    assert abs(got[0] - want[0]) < 0.08  # scale within 8 %
    assert abs(got[1] - want[1]) < 0.05  # rotation within 3 degrees
    np.testing.assert_allclose(got[2:], want[2:], atol=0.06 * width)  # position within 6 % of the face
    reference = crop_geometry.warp(image, original.matrix)
    diff = np.abs(face.crop.astype(int) - reference).mean(-1)
    assert np.median(diff[64:200, 64:200]) < 25  # the centre of the crop shows the same face


def test_no_face_in_a_12mp_photo(aligner):
    with pytest.raises(face_align.NoFaceError, match="no face found in empty.jpg"):
        aligner.align(canvas(3000, 4000, seed=3), "empty.jpg")


def test_astronaut_sample_gives_no_several_faces_warning(caplog):
    caplog.set_level(logging.WARNING)
    aligner = face_align.FaceAligner()
    face = aligner.align(read_image(ASTRONAUT), str(ASTRONAUT))
    assert face.faces == 1
    assert "faces" not in caplog.text
    # The patch on the suit is detected, but not as a face: low confidence at a comparable size.
    centre = face.matrix[:2] @ [128, 128, 1]
    assert 150 < centre[0] < 300 and centre[1] < 200  # the crop is on the head, not the suit


@pytest.fixture(scope="module")
def two_faces(identity, astronaut_head):
    """A 1280x720 frame: the astronaut, larger, on the left; the (clearer) identity face on the right."""
    image, original = identity
    frame = paste(canvas(720, 1280, seed=1), astronaut_head, 2.0, 60, 150)  # face ~190 px
    return paste(frame, image, 150 / original.size, 800, 200)  # face ~150 px


def test_several_faces_default_is_the_clearest_not_the_largest(two_faces, caplog):
    caplog.set_level(logging.WARNING)
    aligner = face_align.FaceAligner()
    faces = aligner.faces(two_faces)
    assert len(faces) == 2 and faces[0].centre_x < faces[1].centre_x
    assert faces[0].size > faces[1].size and faces[1].quality > faces[0].quality
    face = aligner.align(two_faces, "two.png")
    assert face.faces == 2
    assert (face.matrix[:2] @ [128, 128, 1])[0] > 640  # the identity face, on the right
    assert "found 2 faces in two.png; using face 1" in caplog.text and "--face_index" in caplog.text


@pytest.mark.parametrize("index, right", [(0, False), (1, True)])
def test_face_index_counts_from_the_left(two_faces, index, right):
    face = face_align.FaceAligner(face_index=index).align(two_faces, "two.png")
    assert ((face.matrix[:2] @ [128, 128, 1])[0] > 640) == right


def test_face_index_out_of_range(two_faces):
    with pytest.raises(face_align.FaceIndexError, match=r"--face_index 2 is out of range: found 2 faces in two.png"):
        face_align.FaceAligner(face_index=2).align(two_faces, "two.png")
    with pytest.raises(EDTalkError, match="--face_index must be 0 or more"):
        face_align.FaceAligner(face_index=-1)


def test_face_index_with_one_face_uses_it(identity, caplog):
    caplog.set_level(logging.WARNING)
    face = face_align.FaceAligner(face_index=1).align(identity[0], "one.jpg")
    assert face.faces == 1 and "found one face in one.jpg" in caplog.text


def test_face_index_looks_further_for_small_faces(identity):
    """A large face is found on the shrunk copy; --face_index 1 makes the search go on for smaller ones."""
    image, original = identity
    frame = paste(canvas(1500, 2000, seed=2), image, 500 / original.size, 100, 300)  # face ~500 px
    frame = paste(frame, image, 90 / original.size, 1500, 700)  # face ~90 px: too small for the shrunk copy
    assert len(face_align.FaceAligner().faces(frame)) == 1
    face = face_align.FaceAligner(face_index=1).align(frame, "pair.jpg")
    assert face.faces == 2 and (face.matrix[:2] @ [128, 128, 1])[0] > 1500


def test_face_too_small(identity):
    image, original = identity
    frame = paste(canvas(400, 400), image, 48 / original.size, 150, 120)
    message = r"face in tiny.jpg is too small: 4\d px wide .*minimum is 64 px"
    with pytest.raises(face_align.FaceTooSmallError, match=message):
        face_align.FaceAligner().align(frame, "tiny.jpg")


def test_video_frames_reuse_the_scale_and_place_that_found_the_face(identity, monkeypatch):
    """Frames of a video with a small face: the first escalates, the next search near the face only."""
    image, original = identity
    background = canvas(1080, 1920, seed=4)
    frames = [paste(background, image, 100 / original.size, 1400 + 6 * t, 600 + 3 * t) for t in range(3)]
    aligner = face_align.FaceAligner()
    calls = []
    run = aligner._run

    def counted(img, *args, **kwargs):
        calls.append(img.shape[:2])
        return run(img, *args, **kwargs)

    monkeypatch.setattr(aligner, "_run", counted)
    marks = []
    for frame in frames:
        calls.clear()
        faces = aligner.landmarks(frame, "clip.mp4")
        assert len(faces) == 1
        marks.append(faces[0].mean(0))
        if len(marks) > 1:
            assert len(calls) == 1 and max(calls[0]) < 600  # one pass, around the last face only
    np.testing.assert_allclose(np.diff(marks, axis=0), [[6, 3], [6, 3]], atol=3)


def test_video_face_index_out_of_range_names_the_video(two_faces):
    with pytest.raises(face_align.FaceIndexError, match="found 2 faces in clip.mp4"):
        face_align.FaceAligner(face_index=3).landmarks(two_faces, "clip.mp4")


def test_face_index_flag():
    p = parser("demo", "python demo.py", "out.mp4", [])
    assert p.parse_args([]).face_index is None
    assert p.parse_args(["--face_index", "1"]).face_index == 1


def test_pipeline_passes_face_index_to_the_aligner(narrow_ckpts):
    from edtalk.pipeline import TalkingHeadPipeline

    pipe = TalkingHeadPipeline(narrow_ckpts, device="cpu", face_index=2)
    assert pipe.reader.aligner.face_index == 2


@pytest.mark.slow  # ~8 s alone (most of it the first mel spectrogram); the aligner tests above take 1-2 s
def test_cli_face_index_out_of_range_is_one_line(two_faces, narrow_ckpts, tmp_path, capsys):
    from edtalk.cli import render_to_file

    source = tmp_path / "two.png"
    cv2.imwrite(str(source), cv2.cvtColor(two_faces, cv2.COLOR_RGB2BGR))
    flags = ["--source_path", str(source), "--ckpt_dir", str(narrow_ckpts), "--device", "cpu", "--face_index", "2"]
    flags += ["--audio_driving_path", str(MEDIA / "speech_16k_e2e.wav")]  # 0.5 s: the audio is read first
    demo = parser("demo", "python demo.py", str(tmp_path / "out.mp4"), ["audio_driving_path", "pose_driving_path"])
    args = demo.parse_args(flags)
    assert render_to_file(args, "full") == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"--face_index 2 is out of range: found 2 faces in {source} (numbered 0 to 1" in err
    assert list(tmp_path.iterdir()) == [source]


def test_no_face_in_a_huge_photo_says_what_was_searched():
    aligner = face_align.FaceAligner(detect_max_pixels=2_000_000)  # as a 48 MP photo is searched at 16 MP
    message = r"no face found in huge.jpg \(searched at 41% of its size: faces under 157 px may be missed\)"
    with pytest.raises(face_align.NoFaceError, match=message):
        aligner.align(canvas(3000, 4000, seed=5), "huge.jpg")
