# Shared by tools/setup.sh and tools/build-micropython.sh (sourced after LOGS and ROOT are set).

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }
trap 'die "command failed (line $LINENO): $BASH_COMMAND"' ERR

# logged NAME CMD...: run CMD with its output in .cache/logs/NAME.log, show the tail on failure.
logged() {
    local name=$1; shift
    mkdir -p "$LOGS"
    if ! "$@" >"$LOGS/$name.log" 2>&1; then
        tail -n 40 "$LOGS/$name.log" >&2
        die "$name failed, full log: ${LOGS#"$ROOT"/}/$name.log"
    fi
}
