"""The mode policy, as pure functions: a render request (RenderOptions) and what is known about the
pipeline (`Facts`) turned into what to compute (`Plan`), or a one-line EDTalkError.

Nothing here reads media, loads a network or logs: the pipeline checks the plan first, loads the
networks it needs, then logs the plan's notes and starts the long work.
"""

from dataclasses import dataclass

from .emotions import check_expression_scale
from .errors import EDTalkError
from .options import RenderOptions


@dataclass(frozen=True)
class Facts:
    """What the plan depends on besides the request, known without reading any media."""

    has_expression: bool  # the full generator (an expression bank), not the lip-pose one
    source_is_photo: bool  # a photo or an image array, not a video to re-dub
    lip_is_template: bool  # the mouth driver is a motion template (.npz: no soundtrack)
    audio2exp_available: bool  # the Audio2Exp checkpoint exists
    audio2pose_available: bool  # the Audio2Pose checkpoint exists
    face_sr_loaded: bool  # the pipeline has a face restorer
    audio2exp_path: str = "Audio2Exp.pt"  # for the notes
    audio2pose_path: str = "Audio2Pose.pt"


@dataclass(frozen=True)
class Plan:
    """What one render computes. Coefficient sources: the mouth from the audio (else the mouth
    driver), the pose from the audio (else the pose driver, else the source's), the expression from
    the audio (else the driver, else `exp_type`, else the source's). `networks`: the motion
    networks to load ('lip', 'exp', 'pose'); `notes`: info lines about optional checkpoints."""

    lip_from_audio: bool
    pose_from_audio: bool
    exp_from_audio: bool
    face_sr: bool
    exp_scale: float
    notes: tuple[str, ...] = ()

    @property
    def networks(self) -> tuple[str, ...]:
        wanted = {"lip": self.lip_from_audio, "exp": self.exp_from_audio, "pose": self.pose_from_audio}
        return tuple(kind for kind, used in wanted.items() if used)


def check_drivers(request: RenderOptions, facts: Facts) -> None:
    """The combinations of drivers that cannot work, whatever the checkpoints."""
    if (request.exp is not None or request.exp_type) and not facts.has_expression:
        raise EDTalkError(
            "expression control (an expression reference or --exp_type) needs the full generator EDTalk.pt; "
            "the lip-pose model keeps the source's expression"
        )
    if request.exp is not None and request.exp_type:
        raise EDTalkError("give either an expression reference or a predefined expression type, not both")
    if request.audio is None and request.lip is None:
        raise EDTalkError("nothing drives the mouth: give an audio file or a mouth-driving video")
    if request.lip is not None and request.audio is None and facts.lip_is_template:
        raise EDTalkError(
            f"{request.lip} is a motion template: it carries no soundtrack; give the speech to play with "
            "--audio_driving_path"
        )


def pose_from_audio(request: RenderOptions, facts: Facts) -> tuple[bool, str | None]:
    """(whether the head pose comes from the audio, a note when an optional checkpoint is missing).

    By default (pose_from_audio None) it does when the audio is given, the source is a photo, no
    pose driver is given and the Audio2Pose checkpoint exists; a pose style implies it.
    """
    wanted = True if request.pose_style is not None and request.pose_from_audio is None else request.pose_from_audio
    note = None
    if wanted is None:
        wanted = request.pose is None and request.audio is not None and facts.source_is_photo
        if wanted and not facts.audio2pose_available:
            note = (
                f"no pose video given and no {facts.audio2pose_path}: the head stays still (train Audio2Pose "
                "with train/train_audio2pose.py to have it move with the speech)"
            )
            wanted = False
    elif wanted and request.pose is not None:
        raise EDTalkError("give either a pose video or pose from the audio, not both")
    elif wanted and request.audio is None:
        raise EDTalkError("pose from the audio needs an audio file (--audio_driving_path)")
    if request.pose_style is not None and not wanted:
        raise EDTalkError("a pose style shapes the head motion from the audio: it needs pose from the audio")
    if wanted and request.pose_temperature < 0:
        raise EDTalkError(f"the pose temperature must be 0 or more, got {request.pose_temperature}")
    return wanted, note


def exp_from_audio(request: RenderOptions, facts: Facts) -> tuple[bool, str | None]:
    """(whether the expression comes from the audio, a note when an optional checkpoint is missing).

    By default (exp_from_audio None) it does when the audio drives the mouth, no expression
    reference or type is given, the generator is the full model and the Audio2Exp checkpoint exists.
    """
    given = request.exp is not None or bool(request.exp_type)
    wanted = request.exp_from_audio
    if wanted is None:
        if given or request.lip is not None or request.audio is None or not facts.has_expression:
            return False, None
        if not facts.audio2exp_available:
            note = (
                f"no expression reference or type given and no {facts.audio2exp_path}: the source keeps its own "
                "expression (train Audio2Exp with train/train_audio2exp.py to have it follow the speech)"
            )
            return False, note
        return True, None
    if wanted and given:
        raise EDTalkError("give either an expression from the audio or an expression reference / type, not both")
    if wanted and not facts.has_expression:
        raise EDTalkError("expression from the audio needs the full generator EDTalk.pt (an expression bank)")
    if wanted and request.audio is None:
        raise EDTalkError("expression from the audio needs an audio file (--audio_driving_path)")
    return bool(wanted), None


def make_plan(request: RenderOptions, facts: Facts) -> Plan:
    """What to compute for `request`; EDTalkError (one line) for a request that cannot be rendered."""
    check_drivers(request, facts)
    audio_pose, pose_note = pose_from_audio(request, facts)
    audio_exp, exp_note = exp_from_audio(request, facts)
    scale = check_expression_scale(request.exp_scale)
    if scale != 1 and request.exp is None and not request.exp_type and not audio_exp:
        raise EDTalkError("an expression scale needs an expression to scale: a reference, a type or the audio's")
    if request.face_sr and not facts.face_sr_loaded:
        raise EDTalkError("face restoration was not loaded: make the pipeline with face_sr=True (--face_sr)")
    face_sr = facts.face_sr_loaded if request.face_sr is None else request.face_sr
    notes = tuple(note for note in (pose_note, exp_note) if note)
    return Plan(request.lip is None, audio_pose, audio_exp, face_sr, scale, notes)
