"""3D talking-head metrics of predicted vertex sequences against a FaceFormer-layout set (HiSTalk).

    python -m evaluation.mesh --pred out --gt SET --dataset biwi --regions REGIONS --list test.txt --json m.json

The prediction for clip X is PRED/X.npy (frames x V*3, as demo_HiSTalk.py writes); the ground truth
is SET/vertices_npy/X.npy, the subject's template SET/templates.pkl. Definitions (CodeTalker's
main/cal_metric.py), in the set's units squared:
- LVE: per frame, the largest squared L2 error over the lip vertices; averaged over every frame of
  every clip (frame-weighted).
- FDD: per clip, for the upper-face vertices, the standard deviation over time of each vertex's
  squared displacement from the template, averaged over vertices; ground truth's minus the
  prediction's; averaged over clips (signed, as CodeTalker).
- MVE (ours, the common "mean vertex error"): the squared L2 error averaged over all vertices and frames.
A prediction longer than its ground truth is cut to it (and the other way round).
Regions: REGIONS/lve.txt and fdd.txt (comma-separated vertex indices, as CodeTalker ships for BIWI),
or REGIONS/FLAME_masks.pkl for VOCASET (lips; forehead + eye_region for the upper face).
"""

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np

from edtalk.errors import EDTalkError
from edtalk.files import write_atomically
from histalk.layout import check_layout, load_templates, read_list, subject_of
from histalk.meshes import MeshError, read_region


def lip_errors(gt: np.ndarray, pred: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """(T, V, 3) each -> (T,) largest squared error over the lip vertices per frame."""
    return np.square(gt[:, lips] - pred[:, lips]).sum(axis=2).max(axis=1)


def upper_face_std(vertices: np.ndarray, template: np.ndarray, upper: np.ndarray) -> float:
    """Mean over the upper-face vertices of the std over time of their squared displacement."""
    return float(np.square(vertices[:, upper] - template[upper]).sum(axis=2).std(axis=0).mean())


def clip_metrics(gt: np.ndarray, pred: np.ndarray, template: np.ndarray, lips, upper) -> dict:
    """One clip's per-frame lip errors and FDD term; gt/pred (T, V*3) or (T, V, 3), template (V, 3)."""
    frames = min(len(gt), len(pred))
    gt, pred = gt[:frames].reshape(frames, -1, 3), pred[:frames].reshape(frames, -1, 3)
    return {
        "frames": frames,
        "lip_errors": lip_errors(gt, pred, lips),
        "vertex_error": float(np.square(gt - pred).sum(axis=2).mean()),
        "fdd": upper_face_std(gt, template, upper) - upper_face_std(pred, template, upper),
    }


def aggregate(per_clip: list[dict]) -> dict:
    """LVE (frame-weighted), FDD (clip mean), MVE (frame-weighted) of clip_metrics results."""
    frames = sum(c["frames"] for c in per_clip)
    return {
        "lve": float(np.concatenate([c["lip_errors"] for c in per_clip]).mean()),
        "fdd": float(np.mean([c["fdd"] for c in per_clip])),
        "mve": float(sum(c["vertex_error"] * c["frames"] for c in per_clip) / frames),
    }


def read_regions(folder: str | Path, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """(lip indices, upper-face indices) from lve.txt/fdd.txt or FLAME_masks.pkl in `folder`."""
    folder = Path(folder)
    if (folder / "lve.txt").is_file():
        return read_region(folder / "lve.txt", num_vertices), read_region(folder / "fdd.txt", num_vertices)
    masks = folder / "FLAME_masks.pkl"
    if not masks.is_file():
        raise MeshError(f"--regions {folder}: needs lve.txt and fdd.txt, or FLAME_masks.pkl")
    with open(masks, "rb") as f:
        data = pickle.load(f, encoding="latin1")
    upper = np.union1d(np.asarray(data["forehead"]), np.asarray(data["eye_region"])).astype(np.int64)
    return np.asarray(data["lips"]).astype(np.int64), upper


def evaluate(pred: str | Path, gt: str | Path, regions: str | Path, clips: list[str]) -> dict:
    """Metrics over `clips` (names); raises MeshError (one line) for a missing or mismatched file."""
    pred, root = Path(pred), check_layout(gt)
    templates = load_templates(root)
    per_clip, rows = [], []
    lips = upper = None
    for name in clips:
        files = {"prediction": pred / f"{name}.npy", "ground truth": root / "vertices_npy" / f"{name}.npy"}
        for what, path in files.items():
            if not path.is_file():
                raise MeshError(f"{path}: no {what} for clip {name}")
        template = templates.get(subject_of(name))
        if template is None:
            raise MeshError(f"{root}/templates.pkl: no template for subject {subject_of(name)}")
        gt_v, pred_v = np.load(files["ground truth"]), np.load(files["prediction"])
        if pred_v.size // max(len(pred_v), 1) != template.size:
            raise MeshError(f"{files['prediction']}: {pred_v.shape} is not frames x {template.size} (V*3)")
        if lips is None:
            lips, upper = read_regions(regions, len(template))
        result = clip_metrics(gt_v, pred_v, template, lips, upper)
        per_clip.append(result)
        rows.append({"clip": name, "frames": result["frames"], "lve": float(result["lip_errors"].mean())})
        rows[-1] |= {"fdd": result["fdd"], "mve": result["vertex_error"]}
    if not per_clip:
        raise MeshError("the clip list is empty")
    return aggregate(per_clip) | {"clips": len(per_clip), "frames": sum(r["frames"] for r in rows), "per_clip": rows}


def markdown(results: dict, dataset: str) -> str:
    """The report: the summary (with the paper tables' scales for BIWI) and one row per clip."""
    lines = [
        "# 3D talking-head evaluation",
        "",
        f"{results['clips']} clips, {results['frames']} frames ({dataset}).",
        "",
    ]
    lines += ["| | LVE ↓ | FDD ↓ | MVE ↓ |", "| --- | --- | --- | --- |"]
    lines.append(f"| ours | {results['lve']:.4g} | {results['fdd']:.4g} | {results['mve']:.4g} |")
    if dataset == "biwi":
        lines += [
            "",
            f"Paper scales: LVE {results['lve'] / 1e-4:.3f} x1e-4 mm², FDD {results['fdd'] / 1e-5:.3f} x1e-5.",
        ]
    lines += ["", "## Per clip", "", "| clip | frames | LVE | FDD | MVE |", "| --- | --- | --- | --- | --- |"]
    for r in results["per_clip"]:
        lines.append(f"| {r['clip']} | {r['frames']} | {r['lve']:.4g} | {r['fdd']:.4g} | {r['mve']:.4g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.mesh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pred", required=True, help="folder of predictions <clip>.npy")
    parser.add_argument("--gt", required=True, help="FaceFormer-layout set (vertices_npy/, templates.pkl)")
    parser.add_argument("--dataset", default="custom", choices=("vocaset", "biwi", "custom"))
    parser.add_argument("--regions", required=True, help="folder with lve.txt + fdd.txt, or FLAME_masks.pkl")
    parser.add_argument("--list", help="clip names, one per line (default: every prediction in --pred)")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--markdown", help="write the Markdown report here (default: beside --json, .md)")
    args = parser.parse_args(argv)
    try:
        clips = read_list(args.list) if args.list else sorted(p.stem for p in Path(args.pred).glob("*.npy"))
        results = evaluate(args.pred, args.gt, args.regions, clips)
        report = markdown(results, args.dataset)
        outputs = {args.json: json.dumps(results, indent=2) + "\n"}
        md = args.markdown or (str(Path(args.json).with_suffix(".md")) if args.json else None)
        outputs[md] = report
        for path, text in outputs.items():
            if path:
                with write_atomically(path) as f:
                    f.write(text.encode())
    except (EDTalkError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
