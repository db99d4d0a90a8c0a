"""The library path a user composes: audio file -> Audio2Lip -> generator, on our own sample data."""

import torch

import edtalk

from .conftest import ROOT


def test_speech_sample_to_frames(audio2lip, lip_pose_generator):
    windows = torch.from_numpy(edtalk.audio.mel_windows(ROOT / "test_data" / "speech.wav", fps=25))
    assert windows.shape == (int(5.67825 * 25), 1, 80, 16)
    lip = audio2lip.predict(windows)
    assert lip.shape == (len(windows), 20) and torch.isfinite(lip).all()
    assert lip.std(dim=0).min() > 0  # the coefficients move with the speech

    source = torch.rand(1, 3, 256, 256) * 2 - 1
    encoded = lip_pose_generator.encode_source(source)
    first = lip_pose_generator.animate(encoded, lip[:2])
    again = lip_pose_generator.animate(encoded, lip[1:3])
    assert first.shape == (2, 3, 256, 256)
    torch.testing.assert_close(first[1], again[0], atol=1e-4, rtol=0)  # frames depend on their own coefficients only
    assert (first[0] - first[1]).abs().max() > 1e-4
