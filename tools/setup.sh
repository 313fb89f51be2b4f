#!/usr/bin/env bash
# One-time (and idempotent) set-up of everything the tests, the simulator and the bench need,
# on Debian bookworm, as root. A second run changes nothing and takes well under 5 s.
#
#   apt packages   mbpoll, mosquitto(-clients), socat, compilers (incl. gcc-multilib), dpkg-dev...
#   .cache/venv    python venv with `pip install -e .[test,tools]` (the `mbnode` command)
#   .cache/bin     micropython-64, micropython-32, mpy-cross   (tools/build-micropython.sh)
#   .cache/lib     umqtt/simple.py from PyPI's micropython-umqtt.simple
#
# All outputs live in .cache/ (git-ignored); `make distclean` removes it.
# Environment: PYTHON (interpreter for the venv, default python3), MICROPYTHON / MICROPYTHON32
# (use these interpreters instead of building), MBNODE_DEBIAN_MIRROR (override the apt mirror),
# JOBS (make -j, default nproc).
set -eEuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$ROOT/.cache
LOGS=$CACHE/logs
VENV=$CACHE/venv
# Pinned so CI does not change under us; the file is fetched once into .cache/lib.
UMQTT_REQ=${UMQTT_REQ:-micropython-umqtt.simple==1.3.4}

APT_PKGS=(
    mbpoll mosquitto mosquitto-clients socat           # used by the tests
    build-essential gcc-multilib pkg-config            # MicroPython unix port, 64- and 32-bit
    dpkg-dev patch xz-utils                            # unpack/patch Debian's micropython source
    ca-certificates
)

# shellcheck source=tools/common.sh
source "$ROOT/tools/common.sh"

start=$SECONDS
mkdir -p "$CACHE" "$LOGS"
# Serialise concurrent runs (e.g. `make -j test sim`); build-micropython.sh sees the variable.
exec 9>"$CACHE/setup.lock"
flock 9
export MBNODE_SETUP_LOCKED=1

# ---- apt packages ---------------------------------------------------------------------------
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null || ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    # No usable python3 (minimal image) or Debian's python3 without venv: use Debian's.
    APT_PKGS+=(python3 python3-venv)
    PY=/usr/bin/python3
fi

apt_install apt-install "${APT_PKGS[@]}"

# ---- python venv ----------------------------------------------------------------------------
# Reinstall when pyproject.toml or the checkout location changed (the install is editable),
# or when the venv's interpreter no longer runs (e.g. the base python was removed).
want="$(sha256sum <"$ROOT/pyproject.toml" | cut -c1-16) $ROOT"
stamp=$VENV/.mbnode-installed
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
    if ! "$VENV/bin/python" -c '' 2>/dev/null; then
        say "creating venv .cache/venv ($("$PY" -c 'import sys; print(sys.version.split()[0])')) ..."
        rm -rf "$VENV"
        logged venv "$PY" -m venv "$VENV"
    fi
    say "installing python packages (pip install -e .[test,tools]) ..."
    logged pip-install "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -e "${ROOT}[test,tools]"
    echo "$want" >"$stamp"
fi

# ---- umqtt.simple (for MicroPython) ---------------------------------------------------------
if [[ ! -f $CACHE/lib/umqtt/simple.py ]]; then
    say "fetching $UMQTT_REQ ..."
    mkdir -p "$CACHE/tmp"
    tmp=$(mktemp -d "$CACHE/tmp/umqtt.XXXXXX")
    # The sdist has neither setup.py nor pyproject.toml, so pip unpacks it (kept by --no-clean)
    # and then errors out: that error is expected; we only want the unpacked file.
    TMPDIR=$tmp "$VENV/bin/python" -m pip download -q --disable-pip-version-check \
        --no-deps --no-clean -d "$tmp/dl" "$UMQTT_REQ" >"$LOGS/umqtt.log" 2>&1 || true
    src=$(find "$tmp" -path '*/pip-download-*/umqtt/simple.py' -print -quit)
    if [[ -z $src ]]; then                   # a future release that pip can handle: unpack it
        for a in "$tmp"/dl/*.tar.gz; do [[ -e $a ]] && tar -xzf "$a" -C "$tmp"; done
        src=$(find "$tmp" -path '*/umqtt/simple.py' -print -quit)
    fi
    [[ -n $src ]] || { tail -n 20 "$LOGS/umqtt.log" >&2; die "umqtt/simple.py not found in $UMQTT_REQ (log: .cache/logs/umqtt.log)"; }
    install -D -m 644 "$src" "$CACHE/lib/umqtt/simple.py"
    rm -rf "$tmp"
fi

# ---- MicroPython unix port + mpy-cross -------------------------------------------------------
bash "$ROOT/tools/build-micropython.sh"

say "done in $((SECONDS - start)) s"
