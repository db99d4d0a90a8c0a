#!/usr/bin/env bash
# The README's main command: install the environment (once), fetch and verify the official
# checkpoints into ckpts/, then render the sample (test_data/astronaut.jpg speaking
# test_data/speech.wav, happy) to res/demo_EDTalk_A.mp4. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/venv.sh
python download_ckpts.py
python demo_EDTalk_A.py --exp_type happy --paste_back "$@"
