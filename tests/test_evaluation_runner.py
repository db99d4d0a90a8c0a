"""`python -m evaluation` end to end on tiny clips: metrics, skips, integrity checks, reports, resuming."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest
import soundfile

import evaluation.runner
from edtalk.video_io import MediaError, VideoWriter, iter_frames
from evaluation.__main__ import main
from evaluation.clips import read_clip
from evaluation.protocol import main as protocol_main

from .conftest import MEDIA


def write_clip(path, frames, audio=MEDIA / "speech_16k_e2e.wav"):
    with VideoWriter(path, 25.0, audio, num_frames=len(frames)) as writer:
        writer.write(frames)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """reference/{a,b}.mp4 (9 frames of a real face, 0.49 s of speech); generated/a.mp4 is a's
    copy, generated/b.mp4 is blurred and 2 frames short, generated/c.mp4 has no reference."""
    root = tmp_path_factory.mktemp("eval")
    frames = np.stack([f for f, _ in zip(iter_frames(MEDIA / "pose_source1.mp4"), range(9))])
    (root / "reference").mkdir()
    (root / "generated").mkdir()
    write_clip(root / "reference" / "a.mp4", frames)
    shutil.copy(root / "reference" / "a.mp4", root / "reference" / "b.mp4")
    shutil.copy(root / "reference" / "a.mp4", root / "generated" / "a.mp4")
    write_clip(root / "generated" / "b.mp4", np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in frames[:7]]))
    shutil.copy(root / "reference" / "a.mp4", root / "generated" / "c.mp4")
    return root


def run_cli(folders, *extra):
    args = ["--generated", str(folders / "generated"), "--reference", str(folders / "reference")]
    return main([*args, "--out", str(folders / "out"), "--quiet", *extra])


def test_scores_reports_and_skips(folders, capsys, syncnet_ckpt):
    weights = syncnet_ckpt
    assert run_cli(folders, "--syncnet", str(weights), "--sample_stride", "4") == 0
    captured = capsys.readouterr()
    assert "skipped FID: give --inception" in captured.err and "skipped CSIM: give --arcface" in captured.err
    out = folders / "out"
    for name in ("results.md", "results.csv", "results.json", "plots/distributions.png", "plots/lse_offsets.png"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "results.json").read_text())
    a, b = doc["clips"]
    assert a["clip"] == "a" and a["PSNR"] == 100.0 and a["SSIM"] == pytest.approx(1.0)  # identical: capped
    assert a["M-LMD"] == pytest.approx(0.0, abs=1e-9) and a["ID-dlib"] == pytest.approx(1.0, abs=1e-6)
    assert a["problems"] == [] and isinstance(a["LSE-offset"], int) and np.isfinite(a["LSE-C"])
    assert 15 < b["PSNR"] < 40 and b["SSIM"] < 0.95 and b["CPBD"] < a["CPBD"]  # blurred is less sharp
    assert any("7 frames" in p for p in b["problems"])
    assert doc["summary"]["FID"] is None and "FID" in doc["skipped"]
    assert any("c.mp4: no reference" in n for n in doc["notes"])
    report = (out / "results.md").read_text()
    assert "| ours |" in report and "capped at 100 dB" in report and "7x7 uniform window" in report
    assert any("reference clip's alignment" in line for line in doc["definitions"])


def test_rerun_uses_the_cache_and_rescores_changed_clips(folders, monkeypatch, syncnet_ckpt):
    weights = str(syncnet_ckpt)
    if not (folders / "out" / "cache" / "a.json").is_file():
        assert run_cli(folders, "--syncnet", weights, "--sample_stride", "4") == 0

    class NoScoring:
        def __init__(self, config, progress):
            raise AssertionError("a cached clip was scored again")

    monkeypatch.setattr(evaluation.runner, "Scorer", NoScoring)
    assert run_cli(folders, "--syncnet", weights, "--sample_stride", "4") == 0
    later = os.stat(folders / "generated" / "b.mp4").st_mtime + 10
    os.utime(folders / "generated" / "b.mp4", (later, later))
    with pytest.raises(AssertionError, match="scored again"):
        run_cli(folders, "--syncnet", weights, "--sample_stride", "4")


def test_bad_inputs_are_one_line_errors(folders, tmp_path, capsys):
    assert run_cli(folders, "--syncnet", str(tmp_path / "missing.model")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.model" in err
    assert main(["--generated", str(tmp_path / "nowhere"), "--reference", str(tmp_path)]) == 1
    assert "generated folder not found" in capsys.readouterr().err
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    with pytest.raises(MediaError, match="broken.mp4"):
        read_clip(broken)
    assert protocol_main(["--data", str(tmp_path / "no_set"), "--quiet"]) == 1
    assert "no_set" in capsys.readouterr().err
    (tmp_path / "taken").write_text("a file")  # refused before any clip is scored or rendered
    assert run_cli(folders, "--out", str(tmp_path / "taken")) == 1
    assert (
        capsys.readouterr().err.strip() == f"error: --out {tmp_path / 'taken'} is a file: give a folder for the results"
    )
    assert protocol_main(["--data", str(tmp_path), "--out", str(tmp_path / "taken"), "--quiet"]) == 1
    assert f"--out {tmp_path / 'taken'} is a file" in capsys.readouterr().err


def test_other_frame_sizes_are_resized_and_a_broken_clip_does_not_stop_the_run(tmp_path, monkeypatch, capsys):
    no_faces = lambda self, clip, what: np.full((len(clip.frames), 68, 2), np.nan)  # noqa: E731  (skips dlib: faster)
    monkeypatch.setattr(evaluation.runner.Scorer, "landmarks", no_faces)
    frames = np.stack([f for f, _ in zip(iter_frames(MEDIA / "pose_source1.mp4"), range(5))])
    big = np.stack([cv2.resize(f, (480, 480), interpolation=cv2.INTER_LINEAR) for f in frames])
    for folder in ("generated", "reference"):
        (tmp_path / folder).mkdir()
    write_clip(tmp_path / "reference" / "big.mp4", big)  # a 480x480 original against our 256x256 render
    write_clip(tmp_path / "generated" / "big.mp4", frames)
    write_clip(tmp_path / "reference" / "broken.mp4", frames)
    (tmp_path / "generated" / "broken.mp4").write_bytes(b"\x00" * 100)
    args = ["--generated", str(tmp_path / "generated"), "--reference", str(tmp_path / "reference"), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "out"), "--no_identity_fallback"]) == 0
    big_row, broken_row = json.loads((tmp_path / "out" / "results.json").read_text())["clips"]
    assert "generated 256x256 frames resized to the reference's 480x480" in big_row["problems"]
    assert 20 < big_row["PSNR"] < 100 and 0.5 < big_row["SSIM"] < 1
    assert broken_row["clip"] == "broken" and "PSNR" not in broken_row
    assert len(broken_row["problems"]) == 1 and "not scored" in broken_row["problems"][0]
    assert "broken.mp4" in broken_row["problems"][0]
    capsys.readouterr()
    (tmp_path / "a_file").write_text("")
    assert main([*args, "--out", str(tmp_path / "a_file"), "--no_identity_fallback"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "a_file" in err


def test_protocol_writes_references_with_the_clips_own_audio(tmp_path):
    from data_preprocess.lmdb_store import LmdbWriter, encode_jpeg
    from edtalk.audio import load_wav
    from evaluation.protocol import ClipSource, prepare_reference

    raw = tmp_path / "raw"
    raw.mkdir()
    frames = np.stack([f for f, _ in zip(iter_frames(MEDIA / "pose_source1.mp4"), range(30))])
    speech = load_wav(MEDIA / "speech_16k.wav")
    write_clip(raw / "talk.mp4", frames[:1], None)
    soundfile.write(str(raw / "talk.wav"), speech, 16000, subtype="FLOAT")  # the video's separate audio
    data = tmp_path / "set"
    writer = LmdbWriter(data / "lmdb", 25.0, 256, 5.0)
    info = {
        "video": "talk.mp4",
        "start_frame": 10,
        "crop_matrix": np.eye(3).tolist(),
        "group": "talk",
        "has_audio": True,
    }
    no_lm = np.full((8, 68, 2), np.nan)
    writer.write_clip(
        "talk#2", [encode_jpeg(f) for f in frames[10:18]], no_lm, np.zeros((8, 4)), np.zeros((1, 80)), info
    )
    writer.finish_video("talk.mp4", ["talk#2"])
    writer.finalize()
    writer.close()
    (data / "lists").mkdir()
    (data / "lists" / "test.json").write_text(json.dumps(["talk#2"]))

    clips = ClipSource(data, "test", raw)
    video, source, wav = prepare_reference(clips, "talk#2", tmp_path / "out")
    ref = read_clip(video)
    assert len(ref.frames) == 8 and ref.native_fps == 25.0 and source.is_file()
    cut = soundfile.read(str(wav), dtype="float32")[0]
    assert len(cut) == 8 * 640
    assert np.abs(cut - speech[10 * 640 : 18 * 640]).max() < 1 / 32768 + 1e-6  # frames 10..17 of the audio, 16-bit
    assert np.abs(ref.frames[0].astype(int) - frames[10]).mean() < 6  # JPEG + H.264 round trip


def test_fid_over_the_set_is_computed_and_cached(folders, tmp_path, monkeypatch):
    class MeanColour:  # stands in for the Inception network: (N, H, W, 3) -> (N, 3) features
        def __init__(self, path, device="cpu"):
            pass

        def __call__(self, frames):
            return frames.reshape(len(frames), -1, 3).mean(axis=1).astype(np.float64)

    monkeypatch.setattr(evaluation.runner, "InceptionFeatures", MeanColour)
    no_faces = lambda self, clip, what: np.full((len(clip.frames), 68, 2), np.nan)  # noqa: E731  (skips dlib: faster)
    monkeypatch.setattr(evaluation.runner.Scorer, "landmarks", no_faces)
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"stand-in")
    config = evaluation.runner.EvalConfig(inception=str(weights), identity_fallback=False, sample_stride=6)
    pairs = [(folders / "generated" / "a.mp4", folders / "reference" / "a.mp4")]
    first = evaluation.runner.evaluate_pairs(pairs, tmp_path / "out", config, progress=False)
    assert first.fid == pytest.approx(0.0, abs=1e-6)  # a clip against its own copy
    assert (tmp_path / "out" / "cache" / "a.fid.npz").is_file() and "FID" not in first.skipped
    assert np.isnan(first.clips[0]["M-LMD"])  # no face found: no landmark distance, no crash
    stamp = os.stat(tmp_path / "out" / "cache" / "a.json").st_mtime_ns
    pairs.append((folders / "generated" / "b.mp4", folders / "reference" / "b.mp4"))
    second = evaluation.runner.evaluate_pairs(pairs, tmp_path / "out", config, progress=False)
    # FID over all frames of the set: the blurred, shorter clip b moves the generated statistics
    gen = np.concatenate([MeanColour(None)(read_clip(g).frames) for g, _ in pairs])
    ref = np.concatenate([MeanColour(None)(read_clip(r).frames) for _, r in pairs])
    assert second.fid == pytest.approx(evaluation.runner.fid(gen, ref), rel=1e-9) and second.fid > 1e-3
    assert json.dumps(second.clips[0]) == json.dumps(first.clips[0])  # clip a came from the cache...
    assert os.stat(tmp_path / "out" / "cache" / "a.json").st_mtime_ns == stamp  # ...untouched
