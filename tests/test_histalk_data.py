"""prepare_mesh_data.py reads VOCASET and BIWI as released (small synthetic files in each format)."""

import pickle

import numpy as np
import pytest
import soundfile

from data_preprocess.prepare_mesh_data import main
from histalk.meshes import read_mesh, read_templates
from histalk.synthetic import grid_face


def _write_pickle(path, data):
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)


def test_vocaset_release_to_faceformer_layout(tmp_path):
    src, out = tmp_path / "voca", tmp_path / "set"
    src.mkdir()
    v = 12
    verts = np.arange(10 * v * 3, dtype=np.float32).reshape(10, v, 3)
    np.save(src / "data_verts.npy", verts)
    # frames 0..5 of sentence01 are rows 4..9 (stored out of order), 60 fps
    _write_pickle(src / "subj_seq_to_idx.pkl", {"S1": {"sentence01": {k: 4 + k for k in (3, 0, 1, 5, 2, 4)}}})
    audio = np.sin(np.linspace(0, 100, 22000)).astype(np.float32)
    _write_pickle(src / "raw_audio_fixed.pkl", {"S1": {"sentence01": {"audio": audio, "sample_rate": 22000}}})
    _write_pickle(src / "templates.pkl", {"S1": verts[0]})
    assert main(["--dataset", "vocaset", "--input", str(src), "--output", str(out)]) == 0
    clip = np.load(out / "vertices_npy" / "S1_sentence01.npy")
    assert clip.dtype == np.float32 and clip.shape == (3, v * 3)
    np.testing.assert_array_equal(clip, verts[[4, 6, 8]].reshape(3, -1))  # 60 -> 30 fps
    wav, rate = soundfile.read(out / "wav" / "S1_sentence01.wav")
    assert rate == 22000 and len(wav) == 22000
    np.testing.assert_allclose(read_templates(out / "templates.pkl")["S1"], verts[0])


def _write_vl(path, vertices):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.array([len(vertices)], "<u4").tobytes() + vertices.astype("<f4").tobytes())


def test_biwi_release_to_faceformer_layout(tmp_path):
    src, out = tmp_path / "biwi", tmp_path / "set"
    base, faces = grid_face(3, 4)
    (src / "rigid_scans").mkdir(parents=True)
    obj = ["v {} {} {}".format(*p) for p in base] + ["f {} {} {}".format(*(f + 1)) for f in faces]
    (src / "rigid_scans" / "F2.obj").write_text("\n".join(obj) + "\n")
    frames = [base + i for i in range(5)]
    for i, frame in enumerate(frames):
        _write_vl(src / "faces" / "F2" / "05" / f"frame_{i:03d}.vl", frame)
    (src / "wav").mkdir()
    soundfile.write(src / "wav" / "F2_e05.wav", np.zeros(8000, np.float32), 16000)
    assert main(["--dataset", "biwi", "--input", str(src), "--output", str(out)]) == 0
    clip = np.load(out / "vertices_npy" / "F2_e05.npy")
    np.testing.assert_allclose(clip, np.stack(frames).reshape(5, -1), atol=1e-6)
    assert (out / "wav" / "F2_e05.wav").is_file()
    np.testing.assert_allclose(read_templates(out / "templates.pkl")["F2"], base, atol=1e-6)
    vertices, triangles = read_mesh(out / "templates" / "BIWI.ply")
    assert len(vertices) == len(base) and len(triangles) == len(faces)


def test_truncated_vl_is_one_line_error(tmp_path, capsys):
    src = tmp_path / "biwi"
    base, faces = grid_face(2, 2)
    (src / "rigid_scans").mkdir(parents=True)
    (src / "rigid_scans" / "F2.obj").write_text("".join("v {} {} {}\n".format(*p) for p in base) + "f 1 2 3\n")
    _write_vl(src / "faces" / "F2" / "e01" / "frame_000.vl", base)
    (src / "faces" / "F2" / "e01" / "frame_001.vl").write_bytes(b"\x04\x00\x00\x00abc")
    (src / "wav").mkdir()
    soundfile.write(src / "wav" / "F2_e01.wav", np.zeros(800, np.float32), 16000)
    assert main(["--dataset", "biwi", "--input", str(src), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "frame_001.vl" in err and err.count("\n") == 1


@pytest.mark.parametrize("same", [True, False])
def test_faceformer_layout_used_as_is(tmp_path, same):
    src = tmp_path / "set"
    for sub in ("wav", "vertices_npy"):
        (src / sub).mkdir(parents=True)
    np.save(src / "vertices_npy" / "A_1.npy", np.zeros((2, 9), np.float32))
    _write_pickle(src / "templates.pkl", {"A": np.zeros((3, 3))})
    out = src if same else tmp_path / "copy"
    assert main(["--dataset", "biwi", "--input", str(src), "--output", str(out)]) == 0
    assert (out / "vertices_npy" / "A_1.npy").is_file()
