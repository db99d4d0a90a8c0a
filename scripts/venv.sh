# Sourced by run.sh and .ci/run: creates (once) and activates a virtual environment with
# requirements.txt installed; `. scripts/venv.sh --test` also installs requirements-test.txt (the
# test-only packages). The venv lives outside the clone, keyed by the runtime requirements' hash,
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
if [ "${1:-}" = "--test" ]; then
  tests_done="$venv/.tests-$(sha256sum "$root/requirements-test.txt" | cut -c1-12)"
  if [ ! -f "$tests_done" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/requirements-test.txt"
    touch "$tests_done"
  fi
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
