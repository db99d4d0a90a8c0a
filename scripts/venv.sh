# Sourced by run.sh and .ci/run: creates (once) and activates a virtual environment with
# requirements.txt installed. The venv lives outside the clone, keyed by the requirements' hash,
# so a fresh machine builds it and a warm one reuses it. Override the place with EDTALK_VENV.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
hash="$(sha256sum "$root/requirements.txt" | cut -c1-12)"
venv="${EDTALK_VENV:-$HOME/.cache/edtalk/venv-$hash}"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo "Creating the Python environment in $venv (a few minutes, once)..."
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/requirements.txt"
  touch "$venv/.complete"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
