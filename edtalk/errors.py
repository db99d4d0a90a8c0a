"""Errors for user mistakes: each carries a one-line message that names the file and the problem."""


class EDTalkError(Exception):
    """Base class: a problem with the user's inputs, files or settings (not a bug)."""


class CheckpointError(EDTalkError):
    """A checkpoint is missing, unreadable, or of the wrong kind for the requested mode."""


class AudioError(EDTalkError):
    """An audio file is missing, unreadable, empty or too short."""
