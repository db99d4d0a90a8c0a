"""HiSTalk pieces: landmark selection, the renderer's image, network shapes."""

import numpy as np
import pytest
import torch

from histalk.landmarks import embedded_landmarks, sampled_landmarks
from histalk.meshes import MeshError
from histalk.render import MeshRenderer
from histalk.synthetic import grid_face
from networks.histalk import HiSTalk, HiSTalkConfig


def test_sampled_landmarks_are_deterministic_spread_and_half_on_the_lips():
    vertices, _ = grid_face(12, 12)
    lips = np.arange(120, 144)
    first, weights = sampled_landmarks(vertices, 20, lips)
    again, _ = sampled_landmarks(vertices, 20, lips)
    np.testing.assert_array_equal(first, again)
    chosen = first[:, 0]
    assert len(set(chosen)) == 20 and np.isin(chosen, lips).sum() >= 10
    np.testing.assert_array_equal(weights, np.tile([1.0, 0.0, 0.0], (20, 1)))


def test_flame_embedding_gives_barycentric_points(tmp_path):
    vertices, faces = grid_face(4, 4)
    path = tmp_path / "landmark_embedding.npy"
    bary = np.array([[[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]], dtype=np.float32)
    np.save(path, {"full_lmk_faces_idx": np.array([[3, 7]]), "full_lmk_bary_coords": bary}, allow_pickle=True)
    index, weights = embedded_landmarks(path, faces)
    cfg = HiSTalkConfig(num_vertices=len(vertices), num_styles=1, num_landmarks=2, d_model=8, heads=2)
    model = HiSTalk(cfg, torch.as_tensor(index), torch.as_tensor(weights))
    points = model.landmarks(torch.as_tensor(vertices).reshape(-1)).reshape(2, 3).numpy()
    np.testing.assert_allclose(points[0], bary[0, 0] @ vertices[faces[3]], atol=1e-6)
    np.testing.assert_allclose(points[1], vertices[faces[7][0]], atol=1e-6)
    with pytest.raises(MeshError, match="needs the topology's triangles"):
        embedded_landmarks(path, None)


def test_render_is_lit_from_the_upper_left():
    vertices, faces = grid_face(30, 30)
    image = MeshRenderer(faces, vertices, 96).render(vertices).astype(float)
    assert image.shape == (96, 96, 3)
    background = image[0, 0]
    face = image[8:88, 8:88]
    assert (np.abs(face - background).sum(axis=2) > 30).all()  # covered everywhere, no holes
    # the bump's upper-left slope faces the key light, its lower-right slope faces away
    assert image[30, 30].mean() > image[66, 66].mean() + 10


def test_network_shapes_and_template_start():
    cfg = HiSTalkConfig(num_vertices=50, num_styles=3, num_landmarks=6, d_model=16, heads=2, fps=30)
    model = HiSTalk(cfg, torch.arange(18).reshape(6, 3) % 50, torch.full((6, 3), 1 / 3)).eval()
    template = torch.randn(2, 150)
    out = model(torch.randn(2, 110, 80), 41, template, torch.eye(3)[:2])
    assert out["vertices"].shape == (2, 41, 150) and out["landmarks"].shape == (2, 41, 18)
    # both dense heads start at zero: an untrained model outputs the template
    torch.testing.assert_close(out["vertices"], template[:, None].expand(-1, 41, -1))
