"""Video I/O, face alignment and paste-back helpers."""

import numpy as np
import pytest

from edtalk import crop_geometry, face_align, face_paste
from edtalk.rendering import pingpong
from edtalk.video_io import MediaError, VideoWriter, iter_frames, read_image, stream_kinds

from .conftest import MEDIA, ROOT


def test_pingpong_matches_the_official_extension():
    assert pingpong(np.arange(12), 5).tolist() == [0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 0, 1]
    assert pingpong(np.arange(4), 1).tolist() == [0, 0, 0, 0]


def test_writer_is_atomic_and_resamples_on_read(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (10, 64, 48, 3), dtype=np.uint8)
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps=50) as writer:
        writer.write(frames)
        assert not path.exists()  # only the hidden partial file exists while writing
    assert path.exists() and list(tmp_path.iterdir()) == [path]
    assert len(list(iter_frames(path, fps=None))) == 10
    assert len(list(iter_frames(path, fps=25))) == 5  # 50 fps -> 25 fps
    assert stream_kinds(path) == {"Video"}


def test_writer_removes_partial_file_on_error(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(path) as writer:
            writer.write(np.zeros((3, 32, 32, 3), np.uint8))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_odd_frame_sizes_are_padded_to_even(tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path) as writer:
        writer.write(np.zeros((2, 31, 45, 3), np.uint8))
    assert next(iter_frames(path)).shape == (32, 46, 3)


def test_bad_images_and_videos(tmp_path):
    with pytest.raises(MediaError, match=r"image not found: .*a.png"):
        read_image(tmp_path / "a.png")
    (tmp_path / "b.png").write_text("not an image")
    with pytest.raises(MediaError, match=r"cannot read image .*b.png"):
        read_image(tmp_path / "b.png")
    (tmp_path / "c.mp4").write_text("not a video")
    with pytest.raises(MediaError, match=r"cannot read video .*c.mp4: .*Invalid data"):
        next(iter_frames(tmp_path / "c.mp4"))


def test_template_has_the_official_crop_geometry():
    t = crop_geometry.face_template()
    assert t.shape == (68, 2)
    np.testing.assert_allclose(t[36:42].mean(0), [106.3, 113.0], atol=3)
    np.testing.assert_allclose(t[42:48].mean(0), [165.5, 113.5], atol=4)
    np.testing.assert_allclose(t[60:68].mean(0), [138.6, 179.6], atol=3)
    np.testing.assert_allclose(t[8], [135, 224], atol=3)


def test_alignment_of_an_aligned_crop_is_nearly_identity():
    image = read_image(MEDIA / "identity_source.jpg")
    face = face_align.FaceAligner().align(image)
    assert face.faces == 1 and face.crop.shape == (256, 256, 3)
    params = crop_geometry.matrix_params(face.matrix)
    assert abs(params[0]) < 0.15 and abs(params[1]) < 0.1  # scale within 15 %, rotation within 6 degrees
    assert np.abs(params[2:]).max() < 25  # shift within 25 px


def test_uncropped_photo_is_detected_and_aligned():
    image = read_image(ROOT / "test_data" / "astronaut.jpg")
    aligner = face_align.FaceAligner()
    face = aligner.align(image, "astronaut.jpg")
    again = aligner.landmarks(face.crop)  # the crop puts the landmarks on the template
    assert len(again) == 1
    eyes = again[0][36:48].reshape(2, 6, 2).mean(1)
    np.testing.assert_allclose(eyes, crop_geometry.face_template()[36:48].reshape(2, 6, 2).mean(1), atol=6)


def test_no_face():
    with pytest.raises(face_align.NoFaceError, match="no face found in blank.png"):
        face_align.FaceAligner().align(np.full((300, 300, 3), 128, np.uint8), "blank.png")


def test_paste_back_restores_the_frame():
    image = read_image(ROOT / "test_data" / "astronaut.jpg")
    matrix = crop_geometry.similarity_transform(crop_geometry.face_template() * 1.5 + 40)
    crop = crop_geometry.warp(image, matrix)
    restored = face_paste.paste_back(image, crop, matrix)
    assert restored.shape == image.shape
    assert np.abs(restored.astype(int) - image).mean() < 2.0  # only resampling blur inside the face
    changed = face_paste.paste_back(image, np.zeros_like(crop), matrix)
    centre = matrix[:2] @ [128, 128, 1]
    y, x = int(centre[1]), int(centre[0])
    assert changed[y, x].max() == 0 and (changed[0, 0] == image[0, 0]).all()  # face replaced, corners kept


def test_writer_names_the_size_of_the_file_it_writes(tmp_path):
    """yuv420p needs even sides: an odd-sized frame is padded, and the size reported is the padded one."""
    path = tmp_path / "odd.mp4"
    with VideoWriter(path) as writer:
        assert writer.size is None
        writer.write(np.full((2, 509, 511, 3), 90, np.uint8))  # 511x509 (width x height)
        assert writer.size == (510, 512)
    frame = next(iter_frames(path, fps=None))
    assert frame.shape[:2] == writer.size


def test_a_turned_phone_video_is_read_upright_without_imageio_warnings(tmp_path, caplog):
    """A 64x48 clip whose display matrix says 'turn by 90 degrees' (as phones record): frames come
    upright (48 wide, 64 high) and imageio-ffmpeg's frame-size warning is not shown; any other size
    warning of imageio-ffmpeg still is."""
    import logging
    import subprocess

    import imageio_ffmpeg

    from edtalk.video_io import video_duration

    frames = np.zeros((5, 48, 64, 3), np.uint8)
    frames[:, :, :32] = 255  # left half white: after turning, one half of the rows is white
    with VideoWriter(tmp_path / "plain.mp4") as writer:
        writer.write(frames)
    turned = tmp_path / "turned.mp4"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-display_rotation", "90"]
    subprocess.run([*command, "-i", str(tmp_path / "plain.mp4"), "-c", "copy", str(turned)], check=True)
    with caplog.at_level(logging.DEBUG):
        read = np.stack(list(iter_frames(turned)))
        assert video_duration(turned) == pytest.approx(0.2, abs=0.05)
    assert read.shape == (5, 64, 48, 3)
    white_rows = read[0].mean(axis=(1, 2)) > 128
    assert white_rows[:28].all() != white_rows[36:].all()  # the white half is now a top or bottom half
    assert "frame size" not in caplog.text
    with caplog.at_level(logging.WARNING):
        message = "The frame size for reading (40, 64) is different from the source frame size (64, 48)."
        logging.getLogger("imageio_ffmpeg").warning(message)
    assert message in caplog.text
