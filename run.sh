#!/usr/bin/env bash
# The README's main command: install the environment (once), fetch and verify the official
# checkpoints into ckpts/.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/venv.sh
python download_ckpts.py "$@"
