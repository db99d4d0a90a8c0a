"""Score a folder of generated clips against reference clips: every metric whose weights are given.

    from evaluation import EvalConfig, evaluate_folders
    results = evaluate_folders("res/generated", "data/reference", "results/", EvalConfig(syncnet="syncnet_v2.model"))

Per clip (pairs by file stem): PSNR, SSIM, M-LMD, F-LMD, CPBD, LSE-C / LSE-D (SyncNet v2), CSIM
(ArcFace) or ID-dlib, lip-sync expert scores, and integrity checks (frame rate, frame count,
duration, soundtrack); over the set: the mean of each and FID. Per-clip results are cached in
`<out>/cache/` keyed by both files' path, size and mtime and by the metric settings, so a rerun
scores only new or changed clips.
"""

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edtalk.errors import CheckpointError, EDTalkError
from edtalk.face_align import FaceAligner

from .clips import Clip, integrity_checks, pair_clips, read_clip
from .fid import InceptionFeatures, fid
from .identity import ArcFaceIdentity, DlibIdentity, cosine
from .image_metrics import PSNR_CAP, cpbd, psnr, ssim
from .landmarks import lmd
from .sync import ExpertSyncScorer, SyncNetScorer, face_track_crops

CACHE_VERSION = 2
SYNC_CROPS = ("resize", "face")


@dataclass
class EvalConfig:
    """Which metrics run and with which weights (None: that metric is skipped, and says so)."""

    syncnet: str | None = None  # syncnet_v2.model (joonson/syncnet_python) -> LSE-C, LSE-D
    inception: str | None = None  # pytorch-fid's pt_inception-2015-12-05-6726825d.pth -> FID
    arcface: str | None = None  # ArcFace ONNX model -> CSIM (else ID-dlib, offline)
    sync_expert: str | None = None  # our lip-sync expert checkpoint (train/train_syncnet.py)
    sync_crop: str = "resize"  # SyncNet input: whole frame resized (aligned crops) or a face track
    identity_fallback: bool = True  # ID-dlib when no ArcFace model is given
    sample_stride: int = 1  # CPBD and identity on every n-th frame
    device: str = "cpu"

    def skipped(self) -> dict[str, str]:
        """{metric: the flag that enables it} for metrics whose weights were not given."""
        out = {}
        if self.syncnet is None:
            out["LSE-C, LSE-D"] = "--syncnet PATH/syncnet_v2.model"
        if self.inception is None:
            out["FID"] = "--inception PATH/pt_inception-2015-12-05-6726825d.pth"
        if self.arcface is None:
            out["CSIM"] = "--arcface PATH/arcface.onnx" + (
                " (ID-dlib reported instead)" if self.identity_fallback else ""
            )
        return out

    def definitions(self) -> list[str]:
        """One line per metric whose window or definition differs from the paper's (for the report)."""
        out = [
            f"PSNR: per frame, capped at {PSNR_CAP:g} dB (the value of an identical frame), then averaged.",
            "SSIM: scikit-image's 7x7 uniform window over the RGB channels, not the 11x11 Gaussian window "
            "(sigma 1.5) of Wang et al. 2004: not directly comparable with published SSIM.",
            "M-LMD, F-LMD: pixels of a 256x256 aligned crop; both clips are mapped by the reference clip's "
            "alignment, so a face placed wrongly throughout counts.",
            "CPBD: on the generated frames at their own size, every "
            + (f"{self.sample_stride}th frame." if self.sample_stride > 1 else "frame."),
        ]
        if self.syncnet is not None and self.sync_crop == "face":
            out.append(
                "LSE-C, LSE-D: on our face track (dlib landmarks), not syncnet_python's S3FD track "
                "(run_pipeline.py): close to, not the same as, the published procedure."
            )
        return out

    def signature(self) -> dict:
        """What a cached per-clip result depends on: the settings and each weights file's size and mtime."""
        out = {k: v for k, v in asdict(self).items() if k != "device"}
        for key in ("syncnet", "inception", "arcface", "sync_expert"):
            if out[key] is not None:
                if not Path(out[key]).is_file():  # checked before any work, cached or not
                    raise CheckpointError(f"--{key}: weights file not found: {out[key]}")
                out[key] = _file_stamp(Path(out[key]))
        return out


@dataclass
class FolderResults:
    """Per-clip metrics (one dict per pair, in stem order), set means, FID, and notes for readers."""

    clips: list[dict]
    means: dict[str, float]
    fid: float | None
    skipped: dict[str, str]
    notes: list[str] = field(default_factory=list)
    definitions: list[str] = field(default_factory=list)


def _file_stamp(path: Path) -> list:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


class Scorer:
    """The metric networks, loaded once; `score(generated, reference)` -> (metrics dict, FID features or None)."""

    def __init__(self, config: EvalConfig, progress: bool = False):
        if config.sync_crop not in SYNC_CROPS:
            raise EDTalkError(f"--sync_crop must be one of {', '.join(SYNC_CROPS)}, got {config.sync_crop}")
        self.config = config
        self.progress = progress
        self.aligner = FaceAligner()
        self.sync = SyncNetScorer(config.syncnet, config.device) if config.syncnet else None
        self.expert = ExpertSyncScorer(config.sync_expert, config.device) if config.sync_expert else None
        self.inception = InceptionFeatures(config.inception, config.device) if config.inception else None
        if config.arcface:
            self.identity = ArcFaceIdentity(config.arcface)
        else:
            self.identity = DlibIdentity() if config.identity_fallback else None

    def landmarks(self, clip: Clip, what: str) -> np.ndarray:
        """(T, 68, 2) dlib landmarks of every 25-fps frame, NaN where no face was found (the slow
        per-frame step: a progress bar of its frames unless quiet)."""
        out = np.full((len(clip.frames), 68, 2), np.nan)
        desc = f"{clip.path.stem}: {what} landmarks"
        for i, frame in enumerate(tqdm(clip.frames, desc, unit="frame", leave=False, disable=not self.progress)):
            found = self.aligner.landmarks(frame, str(clip.path))
            if found:
                out[i] = found[0]
        return out

    def score(self, gen: Clip, ref: Clip) -> tuple[dict, dict | None]:
        """Every enabled metric of one pair; FID features {'generated', 'reference'} (N, 2048) or None.

        Generated frames of another size than the reference's are resized to it (said in the clip's
        problems) for every metric but CPBD, which measures the generated frames as they are.
        """
        sharpness = float(np.mean([cpbd(f) for f in gen.frames[:: self.config.sample_stride]]))
        problems = integrity_checks(gen, ref)
        gen, resized = to_reference_size(gen, ref)
        if resized:
            problems.append(resized)
        n = min(len(gen.frames), len(ref.frames))
        metrics: dict = {
            "frames": len(gen.frames),
            "reference_frames": len(ref.frames),
            "fps": gen.native_fps,
            "duration": gen.duration,
            "problems": problems,
            "PSNR": float(np.mean([psnr(gen.frames[i], ref.frames[i]) for i in range(n)])),
            "SSIM": float(np.mean([ssim(gen.frames[i], ref.frames[i]) for i in range(n)])),
            "CPBD": sharpness,
        }
        gen_lm, ref_lm = self.landmarks(gen, "generated"), self.landmarks(ref, "reference")
        metrics.update(lmd(gen_lm[:n], ref_lm[:n]))
        for what, marks in (("generated", gen_lm), ("reference", ref_lm)):
            lost = int(np.isnan(marks).any(axis=(1, 2)).sum())
            if lost:
                metrics["problems"].append(f"no face found in {lost} of {len(marks)} {what} frames")
        self._lip_sync(gen, ref, gen_lm, metrics)
        if self.identity is not None:
            sims = [
                cosine(self.identity.embed(gen.frames[i], gen_lm[i]), self.identity.embed(ref.frames[i], ref_lm[i]))
                for i in range(0, n, self.config.sample_stride)
                if not (np.isnan(gen_lm[i]).any() or np.isnan(ref_lm[i]).any())
            ]
            metrics[self.identity.name] = float(np.mean(sims)) if sims else float("nan")
        features = None
        if self.inception is not None:
            features = {"generated": self.inception(gen.frames), "reference": self.inception(ref.frames)}
        return metrics, features

    def _lip_sync(self, gen: Clip, ref: Clip, gen_lm: np.ndarray, metrics: dict) -> None:
        """LSE-offset / LSE-C / LSE-D and the expert's scores into `metrics`, on the generated clip's
        soundtrack (the reference's if it has none); a clip they cannot score gets a problem line."""
        audio = gen.audio if gen.audio is not None else ref.audio
        if audio is None:
            if self.sync or self.expert:
                metrics["problems"].append("no soundtrack in either clip: lip-sync not scored")
            return
        try:
            if self.sync is not None:
                faces = gen.frames if self.config.sync_crop == "resize" else face_track_crops(gen.frames, gen_lm)
                metrics["LSE-offset"], metrics["LSE-C"], metrics["LSE-D"] = self.sync.score(faces, audio)
            if self.expert is not None:
                metrics.update(self.expert.score(gen.frames, audio, gen_lm))
        except EDTalkError as exc:  # too short, or no face to track
            metrics["problems"].append(f"lip-sync not scored: {exc}")


def to_reference_size(gen: Clip, ref: Clip) -> tuple[Clip, str | None]:
    """The generated clip with its frames resized (bilinear) to the reference's (H, W) if they differ,
    and a line saying so (None when the sizes already agree)."""
    (h, w), (gh, gw) = ref.frames.shape[1:3], gen.frames.shape[1:3]
    if (gh, gw) == (h, w):
        return gen, None
    frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in gen.frames])
    return replace(gen, frames=frames), f"generated {gw}x{gh} frames resized to the reference's {w}x{h}"


def _cached(cache: Path, key: dict, want_features: bool) -> tuple[dict, dict | None] | None:
    """A clip's cached result if its key matches (and its FID features exist when needed)."""
    entry = cache.with_suffix(".json")
    if not entry.is_file():
        return None
    try:
        data = json.loads(entry.read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != key:
        return None
    if not want_features:
        return data["metrics"], None
    npz = cache.with_suffix(".fid.npz")
    if not npz.is_file():
        return None
    with np.load(npz) as f:
        return data["metrics"], {"generated": f["generated"], "reference": f["reference"]}


def _store(cache: Path, key: dict, metrics: dict, features: dict | None) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    if features is not None:
        np.savez(cache.with_suffix(".fid.npz"), **features)
    tmp = cache.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"key": key, "metrics": metrics}, indent=1))
    tmp.replace(cache.with_suffix(".json"))  # written last: a clip counts as scored only when complete


def evaluate_pairs(pairs: list[tuple[Path, Path]], out: str | Path, config: EvalConfig, progress: bool = True):
    """Score (generated, reference) video pairs; see `evaluate_folders`."""
    out = Path(out)
    scorer = None  # networks load only when some clip is not cached
    clips, gen_feats, ref_feats = [], [], []
    signature = config.signature()
    for gen_path, ref_path in tqdm(pairs, desc="scoring clips", unit="clip", disable=not progress):
        key = {
            "version": CACHE_VERSION,
            "generated": _file_stamp(gen_path),
            "reference": _file_stamp(ref_path),
            "config": signature,
        }
        cache = out / "cache" / gen_path.stem
        hit = _cached(cache, key, config.inception is not None)
        if hit is None:
            scorer = scorer or Scorer(config, progress)
            try:
                hit = scorer.score(read_clip(gen_path), read_clip(ref_path))
            except EDTalkError as exc:  # an unreadable clip: this pair is reported, the others still scored
                clips.append(_not_scored(gen_path, ref_path, exc))
                continue
            _store(cache, key, *hit)
        metrics, features = hit
        clips.append({"clip": gen_path.stem, "generated": str(gen_path), "reference": str(ref_path), **metrics})
        if features is not None:
            gen_feats.append(features["generated"])
            ref_feats.append(features["reference"])
    fid_value = None
    if gen_feats:
        gen_all, ref_all = np.concatenate(gen_feats), np.concatenate(ref_feats)
        fid_value = fid(gen_all, ref_all) if min(len(gen_all), len(ref_all)) >= 2 else float("nan")
    return FolderResults(clips, means(clips), fid_value, config.skipped(), definitions=config.definitions())


def _not_scored(gen_path: Path, ref_path: Path, exc: EDTalkError) -> dict:
    """The results row of a pair that could not be scored: its paths and the reason as its one problem."""
    return {
        "clip": gen_path.stem,
        "generated": str(gen_path),
        "reference": str(ref_path),
        "problems": [f"not scored: {exc}"],
    }


def evaluate_folders(generated: str | Path, reference: str | Path, out: str | Path, config: EvalConfig, progress=True):
    """Score every video in `generated` against the video of the same stem in `reference` -> FolderResults."""
    pairs, unpaired = pair_clips(generated, reference)
    results = evaluate_pairs(pairs, out, config, progress)
    results.notes.extend(unpaired)
    return results


def means(clips: list[dict]) -> dict[str, float]:
    """Mean over clips of every numeric metric (NaN entries left out; frame counts and fps excluded)."""
    skip = {"frames", "reference_frames", "fps", "duration"}
    names = list(dict.fromkeys(k for c in clips for k, v in c.items() if k not in skip and isinstance(v, (int, float))))
    out = {}
    for name in names:
        values = np.array([c[name] for c in clips if isinstance(c.get(name), (int, float))], dtype=float)
        values = values[~np.isnan(values)]
        out[name] = float(values.mean()) if len(values) else float("nan")
    return out
