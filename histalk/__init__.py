"""HiSTalk library: speech -> animated 3D face mesh (data layout, checkpoints, inference, rendering).

Library entry (used by demo_HiSTalk.py and the web UI):

    from histalk import MeshAnimator
    animator = MeshAnimator.load("RUN/checkpoints/best.pt", device="cpu")
    result = animator.render("speech.wav", "out/F2_e05.mp4", template="SET/templates.pkl", subject="F2", style="F2")
"""

from .inference import MeshAnimator, MeshResult

__all__ = ["MeshAnimator", "MeshResult"]
