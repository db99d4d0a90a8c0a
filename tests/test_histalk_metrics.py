"""evaluation.mesh: CodeTalker's LVE and FDD, and MVE, against answers worked out by hand."""

import json

import numpy as np

from evaluation.mesh import aggregate, clip_metrics, main
from histalk.meshes import write_templates


def test_known_answers():
    template = np.zeros((3, 3))
    gt = np.zeros((2, 3, 3))
    pred = np.zeros((2, 3, 3))
    pred[0, 0] = [1, 0, 0]  # lip vertex 0: squared error 1 in frame 0
    pred[0, 1] = [0, 2, 0]  # lip vertex 1: squared error 4 in frame 0 (the max)
    pred[1, 1] = [0, 0, 3]  # frame 1: max 9
    gt[1, 2] = [2, 0, 0]  # upper vertex 2 moves in frame 1: squared displacement 0 then 4, std 2
    result = clip_metrics(gt, pred, template, np.array([0, 1]), np.array([2]))
    np.testing.assert_allclose(result["lip_errors"], [4, 9])
    assert result["fdd"] == 2.0  # gt std 2 - pred std 0
    np.testing.assert_allclose(result["vertex_error"], (1 + 4 + 9 + 4) / 6)
    other = clip_metrics(gt[:1], gt[:1], template, np.array([0, 1]), np.array([2]))  # 1 perfect frame, fdd 0
    totals = aggregate([result, other])
    np.testing.assert_allclose(totals["lve"], (4 + 9 + 0) / 3)  # frame-weighted
    np.testing.assert_allclose(totals["fdd"], 1.0)  # clip mean
    np.testing.assert_allclose(totals["mve"], (18 / 6 * 2 + 0) / 3)


def test_cli_writes_json_and_markdown(tmp_path, capsys):
    gt_set, pred, regions = tmp_path / "set", tmp_path / "out", tmp_path / "regions"
    for folder in (gt_set / "vertices_npy", gt_set / "wav", pred, regions):
        folder.mkdir(parents=True)
    write_templates(gt_set / "templates.pkl", {"F2": np.zeros((4, 3))})
    np.save(gt_set / "vertices_npy" / "F2_e37.npy", np.zeros((3, 12), np.float32))
    shifted = np.zeros((4, 12), np.float32)  # one frame longer than the ground truth: cut
    shifted[:, 0] = 0.5
    np.save(pred / "F2_e37.npy", shifted)
    (regions / "lve.txt").write_text("0, 1")
    (regions / "fdd.txt").write_text("2, 3")
    (tmp_path / "test.txt").write_text("F2_e37\n")
    argv = ["--pred", str(pred), "--gt", str(gt_set), "--dataset", "biwi", "--regions", str(regions)]
    assert main(argv + ["--list", str(tmp_path / "test.txt"), "--json", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["frames"] == 3 and result["clips"] == 1
    np.testing.assert_allclose([result["lve"], result["fdd"], result["mve"]], [0.25, 0.0, 0.25 / 4])
    assert "| ours |" in (tmp_path / "m.md").read_text()
    (pred / "F2_e37.npy").unlink()
    assert main(argv + ["--json", str(tmp_path / "n.json"), "--list", str(tmp_path / "test.txt")]) == 1
    assert "no prediction for clip F2_e37" in capsys.readouterr().err
    assert not (tmp_path / "n.json").exists()
