"""What people and machines read: results.json, results.csv, results.md and plots/*.png in the out folder."""

import csv
import json
import math
from pathlib import Path

import numpy as np

from .runner import FolderResults

# The paper's columns (EDTalk, Table 1), in its order; arrows say which way is better.
PAPER_COLUMNS = ("PSNR", "SSIM", "M-LMD", "F-LMD", "FID", "LSE-C", "LSE-D", "CSIM", "CPBD")
BETTER = {"PSNR": "↑", "SSIM": "↑", "M-LMD": "↓", "F-LMD": "↓", "FID": "↓", "LSE-C": "↑", "LSE-D": "↓", "CSIM": "↑"}
BETTER.update({"CPBD": "↑", "ID-dlib": "↑"})
PLOTTED = ("PSNR", "SSIM", "M-LMD", "F-LMD", "CPBD", "LSE-C", "LSE-D", "CSIM", "ID-dlib")


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.3f}"
    return str(value)


def summary_row(results: FolderResults) -> dict[str, float | None]:
    """The paper's columns for this run (None where not computed), plus ID-dlib when it stands in for CSIM."""
    row = {name: (results.fid if name == "FID" else results.means.get(name)) for name in PAPER_COLUMNS}
    if "ID-dlib" in results.means:
        row["ID-dlib"] = results.means["ID-dlib"]
    return row


def markdown(results: FolderResults, title: str = "Evaluation", published: dict | None = None) -> str:
    """The Markdown report: summary table (with published numbers beside ours if given), per-clip
    table, skipped metrics with the flag that enables each, and integrity problems."""
    row = summary_row(results)
    names = list(row)
    lines = [f"# {title}", "", f"{len(results.clips)} clips.", ""]
    lines += ["| | " + " | ".join(f"{n} {BETTER.get(n, '')}".strip() for n in names) + " |"]
    lines += ["| --- " * (len(names) + 1) + "|", "| ours | " + " | ".join(_fmt(row[n]) for n in names) + " |"]
    if published:
        lines.append(f"| {published['label']} | " + " | ".join(_fmt(published["values"].get(n)) for n in names) + " |")
        lines += ["", f"Published numbers: {published['source']}."]
    if "ID-dlib" in row:
        lines += ["", "ID-dlib is the cosine similarity of dlib face descriptors, not ArcFace CSIM: not comparable."]
    if results.skipped:
        lines += ["", "Skipped (weights not given):", ""]
        lines += [f"- {name}: enable with `{flag}`" for name, flag in results.skipped.items()]
    per_clip = ("PSNR", "SSIM", "M-LMD", "F-LMD", "CPBD", "LSE-C", "LSE-D", "LSE-offset", "CSIM", "ID-dlib")
    per_clip = [n for n in per_clip if any(n in c for c in results.clips)]
    lines += ["", "## Per clip", "", "| clip | " + " | ".join(per_clip) + " | problems |"]
    lines += ["| --- " * (len(per_clip) + 2) + "|"]
    for c in results.clips:
        problems = "; ".join(c.get("problems", [])) or "none"
        lines.append(f"| {c['clip']} | " + " | ".join(_fmt(c.get(n)) for n in per_clip) + f" | {problems} |")
    if results.definitions:
        lines += ["", "How these numbers differ from the paper's definitions:", ""]
        lines += [f"- {line}" for line in results.definitions]
    if results.notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in results.notes]
    return "\n".join(lines) + "\n"


def write_csv(results: FolderResults, path: Path) -> None:
    """One row per clip and a final 'mean' row; problems joined with '; '."""
    columns = list(dict.fromkeys(k for c in results.clips for k in c))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns + ["FID"])
        writer.writeheader()
        for c in results.clips:
            writer.writerow({**c, "problems": "; ".join(c.get("problems", []))})
        writer.writerow({"clip": "mean", **results.means, "FID": results.fid})


def plot(results: FolderResults, folder: Path) -> list[Path]:
    """Per-metric distributions over clips, the LSE offset histogram and LSE-C against M-LMD per clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    names = [n for n in PLOTTED if any(np.isfinite(c.get(n, np.nan)) for c in results.clips)]
    if names:
        fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 3), squeeze=False)
        for ax, name in zip(axes[0], names):
            values = [c[name] for c in results.clips if np.isfinite(c.get(name, np.nan))]
            ax.hist(values, bins=min(20, max(3, len(values))))
            ax.set_title(f"{name} {BETTER.get(name, '')}")
            ax.set_xlabel("per clip")
        axes[0][0].set_ylabel("clips")
        written.append(_save(fig, folder / "distributions.png"))
    offsets = [c["LSE-offset"] for c in results.clips if "LSE-offset" in c]
    if offsets:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.hist(offsets, bins=np.arange(min(offsets) - 0.5, max(offsets) + 1.5))
        ax.set_xlabel("SyncNet offset (frames; positive: audio leads)")
        ax.set_ylabel("clips")
        written.append(_save(fig, folder / "lse_offsets.png"))
        pairs = [
            (c["M-LMD"], c["LSE-C"]) for c in results.clips if "LSE-C" in c and np.isfinite(c.get("M-LMD", np.nan))
        ]
        if pairs:
            fig, ax = plt.subplots(figsize=(4, 3))
            ax.scatter(*zip(*pairs), s=12)
            ax.set_xlabel("M-LMD (px, lower is better)")
            ax.set_ylabel("LSE-C (higher is better)")
            written.append(_save(fig, folder / "lse_c_vs_mlmd.png"))
    return written


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_report(results: FolderResults, out: str | Path, title: str = "Evaluation", published: dict | None = None):
    """Write results.json, results.csv, results.md and plots/ into `out`; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "summary": summary_row(results),
        "means": results.means,
        "fid": results.fid,
        "skipped": results.skipped,
        "clips": results.clips,
        "notes": results.notes,
        "definitions": results.definitions,
        "published": published,
    }
    paths = [out / "results.json", out / "results.csv", out / "results.md"]
    paths[0].write_text(json.dumps(_json_safe(doc), indent=1))
    write_csv(results, paths[1])
    paths[2].write_text(markdown(results, title, published))
    return paths + plot(results, out / "plots")


def _save(fig, path: Path) -> Path:
    """Lay out, write as PNG and close a matplotlib figure; its path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
