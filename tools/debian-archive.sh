# Packages from another Debian suite (trixie) without touching the system's apt set-up: a
# private source list, lists and cache under .cache/. Sourced by tools/build-micropython.sh (the
# micropython source package) and tools/setup-mcu.sh (pico-sdk-source, tinyusb-source).
# Needs say/die from tools/common.sh.

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg   # bookworm's copy holds the trixie keys

# Print the URI of this machine's Debian archive: the first enabled `deb` entry whose suites
# include the machine's own codename (so not -security, -updates or third-party repositories).
# Read from deb822 *.sources files and one-line *.list files. MBNODE_DEBIAN_MIRROR overrides.
debian_mirror() {
    if [[ -n ${MBNODE_DEBIAN_MIRROR:-} ]]; then echo "$MBNODE_DEBIAN_MIRROR"; return; fi
    local codename f
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [[ -n $codename ]] || codename=$(sed -n 's/^VERSION=.*(\(.*\)).*/\1/p' /etc/os-release)
    {
        for f in /etc/apt/sources.list.d/*.sources; do
            [[ -e $f ]] || continue
            # deb822: stanzas separated by blank lines; emit "URI suite suite..." per stanza.
            awk '
                function flush() {
                    if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no" && uri != "")
                        print uri, suites
                    types = uri = suites = enabled = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                { key = tolower($1); $1 = "" ; sub(/^ +/, "") }
                key == "types:"   { types = $0 }
                key == "uris:"    { uri = $1 }
                key == "suites:"  { suites = $0 }
                key == "enabled:" { enabled = $1 }
                END { flush() }' "$f"
        done
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [[ -e $f ]] || continue
            # deb [options] URI suite components...
            awk '$1 == "deb" {
                    i = 2
                    if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if (i + 1 <= NF) print $i, $(i + 1)
                }' "$f"
        done
    } | awk -v c="$codename" '{ for (i = 2; i <= NF; i++) if ($i == c && !found) { found = 1; print $1 } }'
}

# private_apt DIR TYPE SUITE: a source list with one entry (TYPE deb or deb-src) for SUITE on this
# machine's mirror, in DIR; sets PRIVATE_APT to the apt-get options that use it (and keep every
# list and download in DIR). The caller runs `apt-get "${PRIVATE_APT[@]}" update` first.
private_apt() {
    local dir=$1 type=$2 suite=$3 mirror
    mirror=$(debian_mirror)
    [[ -n $mirror ]] || die "cannot find this machine's Debian mirror in /etc/apt (set MBNODE_DEBIAN_MIRROR=URI)"
    [[ -f $KEYRING ]] || die "$KEYRING missing (apt-get install debian-archive-keyring)"
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    # check-valid-until=no: lets a snapshot.debian.org mirror work too.
    echo "$type [signed-by=$KEYRING check-valid-until=no] $mirror $suite main" >"$dir/sources.list"
    PRIVATE_APT=(
        -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache"
        -o APT::Sandbox::User=root -q
    )
}
