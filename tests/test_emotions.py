"""Emotion mixes (--exp_type happy:0.7,surprised:0.3) and the expression scale (--exp_scale)."""

import numpy as np
import pytest
import torch

import demo_EDTalk_A
from edtalk.emotions import check_expression_scale, parse_emotion_mix
from edtalk.errors import EDTalkError
from edtalk.pipeline import TalkingHeadPipeline

from .conftest import MEDIA
from .test_demos import SOURCE, ckpt_dir  # noqa: F401  (fixture)


def test_mixes_parse_with_intensities():
    assert parse_emotion_mix("happy") == {"happy": 1.0}
    assert parse_emotion_mix("happy:0.7, surprised:0.3") == {"happy": 0.7, "surprised": 0.3}
    assert parse_emotion_mix("sad:0,angry:2") == {"sad": 0.0, "angry": 2.0}
    assert check_expression_scale(1.5) == 1.5


@pytest.mark.parametrize(
    "spec, message",
    [
        ("happy:x", "the weight of happy is not a number: 'x'"),
        ("happy:-1", "the weight of happy must be a number >= 0, got -1"),
        ("happy:nan", "must be a number >= 0"),
        ("happy,,sad", "an empty name"),
        (":0.5", "an empty name"),
        ("happy,happy:0.5", "happy is given twice"),
        ("happy:0,sad:0", "every weight is 0"),
    ],
)
def test_bad_mixes_are_one_line_errors(spec, message):
    with pytest.raises(EDTalkError, match=f"emotion mix '{spec}': .*{message}"):
        parse_emotion_mix(spec)


@pytest.mark.parametrize("scale", [-0.5, float("inf")])
def test_bad_scales_are_errors(scale):
    with pytest.raises(EDTalkError, match="the expression scale must be a number >= 0"):
        check_expression_scale(scale)


@pytest.fixture(scope="module")
def pipe(ckpt_dir):  # noqa: F811
    return TalkingHeadPipeline(ckpt_dir, "full", "cpu", batch_size=2, crop=False, progress=False)


def test_a_mix_is_the_weighted_sum_of_its_emotions(pipe):
    happy, sad = pipe.expression_weight("happy"), pipe.expression_weight("sad")
    mixed = pipe.expression_weight("happy:0.7,sad:0.3")
    assert mixed.shape == (1, 10)
    torch.testing.assert_close(mixed, 0.7 * happy + 0.3 * sad)
    with pytest.raises(EDTalkError, match="no expression 'joyful' in .*available: angry"):
        pipe.expression_weight("happy:0.5,joyful:0.5")


def first_frames(pipe, **exp) -> np.ndarray:
    with pipe.render(SOURCE, audio=MEDIA / "speech_16k_e2e.wav", **exp) as result:
        return next(iter(result.frames)).astype(np.float32)


def test_the_scale_multiplies_the_expression(pipe):
    scaled = first_frames(pipe, exp_type="happy", exp_scale=0.25)
    assert np.abs(scaled - first_frames(pipe, exp_type="happy:0.25")).max() <= 1  # uint8 rounding
    assert np.abs(scaled - first_frames(pipe, exp_type="happy")).mean() > 1  # the scale is not ignored
    with pytest.raises(EDTalkError, match="needs an expression to scale: a reference, a type or the audio's"):
        pipe.render(SOURCE, audio=MEDIA / "speech_16k_e2e.wav", exp_scale=2.0)


def test_the_demo_flags_take_mixes_and_scales(tmp_path, ckpt_dir, capsys):  # noqa: F811
    args = ["--source_path", SOURCE, "--ckpt_dir", ckpt_dir, "--no_crop", "--quiet"]
    args += ["--audio_driving_path", MEDIA / "speech_16k_e2e.wav", "--save_path", tmp_path / "out.mp4"]
    code = demo_EDTalk_A.main([*map(str, args), "--exp_type", "happy:0.7,fear:x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == ["error: emotion mix 'happy:0.7,fear:x': the weight of fear is not a number: 'x'"]
    assert not (tmp_path / "out.mp4").exists()
