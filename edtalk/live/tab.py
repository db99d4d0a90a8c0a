"""The web UI's "Live" tab: the live page (/live/, edtalk/live/webrtc.py) inside the Gradio page.

The page builder makes one call inside its `gr.Tabs()` block, beside the other tabs:

    from edtalk.live.tab import live_tab
    ...
        live_tab()

The page itself is served by `mount_live` (edtalk/live/mount.py), which app.py calls after launch.
"""

import gradio as gr

FRAME_HEIGHT_PX = 640


def live_tab() -> gr.Tab:
    """Add the "Live" tab (an explanation and the live page in a frame) to the Blocks being built."""
    with gr.Tab("Live", elem_id="live-tab") as tab:
        gr.Markdown(
            "Speak into the microphone and the photo speaks with you: the talking head and your voice come "
            "back over WebRTC, about 140 ms behind (the mouth's look-ahead) plus the compute. "
            "Also at [live/](live/) on its own page; programs can stream PCM to `/live/ws` (docs/live.md)."
        )
        gr.HTML(
            f'<iframe src="live/" title="Live" allow="microphone; autoplay" '
            f'style="width: 100%; height: {FRAME_HEIGHT_PX}px; border: 0"></iframe>',
            elem_id="live-frame",
        )
    return tab
