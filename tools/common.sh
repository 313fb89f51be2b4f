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

# installed PACKAGE: is this Debian package installed? (Not `dpkg -s | grep -q`: with pipefail,
# grep's early exit can SIGPIPE dpkg and give a false negative.)
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

# apt_install LOG PACKAGE...: install whichever of the packages are missing (as root), output in
# .cache/logs/LOG.log; the package lists are refreshed when there are none, or after a failure.
apt_install() {
    local log=$1 p
    shift
    local missing=()
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    say "installing apt packages: ${missing[*]} ..."
    ((EUID == 0)) || die "not root: run as root, or install these first: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local aptinst=(apt-get install -y -q --no-install-recommends
                   -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}")
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        logged apt-update apt-get update -q
    fi
    if ! "${aptinst[@]}" >"$LOGS/$log.log" 2>&1; then
        say "apt-get install failed, refreshing package lists and retrying ..."
        logged apt-update apt-get update -q
        logged "$log" "${aptinst[@]}"
    fi
}
