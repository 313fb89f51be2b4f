#!/usr/bin/env bash
# Provide the MicroPython unix port (64-bit and 32-bit) and mpy-cross in .cache/bin:
#
#   .cache/bin/micropython-64   x86-64 build (or a symlink to $MICROPYTHON / `micropython` on PATH)
#   .cache/bin/micropython-32   i386 build, 31-bit small ints like ESP32/RP2040 (or -> $MICROPYTHON32)
#   .cache/bin/mpy-cross        from the same source tree as the builds
#
# Bookworm has no micropython package, so the sources are Debian's `micropython` source package
# from trixie, fetched with apt through a private source list under .cache/apt (the mirror is the
# one this machine's apt already uses). Idempotent: a binary is rebuilt only when its recipe
# (source version, make variables, manifest) changed. Normally run by tools/setup.sh.
# Needs: build-essential, gcc-multilib, dpkg-dev, python3 (tools/setup.sh installs them).
set -eEuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$ROOT/.cache
BIN=$CACHE/bin
SRC_BASE=$CACHE/src
LOGS=$CACHE/logs
MANIFEST=$ROOT/tools/micropython-manifest.py
MP_SUITE=${MP_SUITE:-trixie}               # Debian suite that packages micropython (1.25.0+ds-1)
JOBS=${JOBS:-$(nproc)}
RECIPE_REV=1                               # bump to force a rebuild after changing this script

# The +ds tarball has the lib/ submodules stripped (berkeley-db, mbedtls, axtls, libffi,
# micropython-lib...). Switch off what needs them; Debian itself builds against system
# libmbedtls/libffi, which we do not need. No variable here makes the build run `git submodule`.
PORT_VARS=(
    MICROPY_PY_BTREE=0
    MICROPY_PY_SSL=0 MICROPY_SSL_MBEDTLS=0 MICROPY_SSL_AXTLS=0
    MICROPY_PY_FFI=0 MICROPY_PY_JNI=0
    FROZEN_MANIFEST="$MANIFEST"
)

# shellcheck source=tools/common.sh
source "$ROOT/tools/common.sh"
# shellcheck source=tools/debian-archive.sh
source "$ROOT/tools/debian-archive.sh"

# Serialise concurrent runs (e.g. two make targets at once); tools/setup.sh already holds the lock.
if [[ -z ${MBNODE_SETUP_LOCKED:-} ]]; then
    mkdir -p "$CACHE"
    exec 9>"$CACHE/setup.lock"
    flock 9
    export MBNODE_SETUP_LOCKED=1
fi
mkdir -p "$BIN" "$SRC_BASE"

# --------------------------------------------------------------------------------------------
# Checks run inside a MicroPython binary. Prints one line:
#   maxsize=N mpy=N viper=ok|no(...) native=ok|no(...)
# and fails if a module the firmware/simulator needs is missing. The emitters are tried through
# exec() because an unsupported decorator is a compile-time error that would abort the script.
CHECK_PY='
import sys, micropython
import asyncio, select, socket, termios, struct, json, time, os, errno, io, binascii
def t(src):
    try:
        g = {}
        exec(src, g)
        return "ok" if g["f"]() else "wrong"
    except Exception as e:
        return "no(%s)" % type(e).__name__
viper = t("""
import micropython
@micropython.viper
def f():
    b = bytearray(4)
    p = ptr8(b)
    for i in range(4):
        p[i] = 0x40 + i
    return b == b"@ABC"
""")
native = t("""
import micropython
@micropython.native
def f():
    return sum(range(5)) == 10
""")
print("maxsize=%d mpy=%d viper=%s native=%s" % (sys.maxsize, sys.implementation._mpy, viper, native))
'

# probe BINARY: print the check line (empty output + status 1 if the binary is unusable).
probe() { "$1" -c "$CHECK_PY" 2>/dev/null | tail -n1; }

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }   # field NAME LINE

maxsize_for() { [[ $1 == 64 ]] && echo 9223372036854775807 || echo 2147483647; }

# --------------------------------------------------------------------------------------------
# Prefer an existing interpreter: $MICROPYTHON (or `micropython` on PATH) for 64-bit,
# $MICROPYTHON32 for 32-bit. An explicitly named one must pass the checks; one merely found on
# PATH is skipped (and we build) if it does not.
declare -A ADOPTED=()
adopt() {
    local bits=$1 var cand explicit=1 line
    if [[ $bits == 64 ]]; then var=MICROPYTHON; else var=MICROPYTHON32; fi
    cand=${!var:-}
    if [[ -z $cand && $bits == 64 ]]; then
        cand=$(command -v micropython || true)
        explicit=0
    fi
    [[ -n $cand ]] || return 1
    if [[ $cand != */* ]]; then cand=$(command -v "$cand" || echo "$cand"); fi
    line=$(probe "$cand" || true)
    if [[ $(field maxsize "$line") == "$(maxsize_for "$bits")" ]]; then
        ln -sfn "$(readlink -f "$cand")" "$BIN/micropython-$bits"
        rm -f "$BIN/.micropython-$bits.recipe"
        ADOPTED[$bits]=$cand
        say "micropython-$bits: using existing $cand"
        return 0
    fi
    if ((explicit)); then
        die "\$$var=$cand is not a usable ${bits}-bit MicroPython (needs sys.maxsize $(maxsize_for "$bits") and modules asyncio, select, socket, termios, struct, json); probe said: '${line:-nothing}'"
    fi
    say "ignoring $cand on PATH (not a usable ${bits}-bit MicroPython); using our own build"
    return 1
}

# Fetch and unpack the micropython source package once; sets MP_SRC and MP_VERSION.
ensure_source() {
    if [[ -f $SRC_BASE/ready ]]; then
        read -r MP_VERSION MP_SRC <"$SRC_BASE/ready"
        [[ -d $MP_SRC ]] && return 0
    fi
    local dl=$SRC_BASE/dl dsc tmp
    say "fetching micropython source package ($MP_SUITE) ..."
    private_apt "$CACHE/apt" deb-src "$MP_SUITE"
    logged apt-src-update apt-get "${PRIVATE_APT[@]}" update
    rm -rf "$dl" && mkdir -p "$dl"
    cd "$dl"   # apt-get source downloads into the current directory
    logged apt-src-download apt-get "${PRIVATE_APT[@]}" source --download-only micropython
    cd "$ROOT"
    dsc=$(ls "$dl"/micropython_*.dsc)
    MP_VERSION=${dsc##*/micropython_}; MP_VERSION=${MP_VERSION%.dsc}
    MP_SRC=$SRC_BASE/micropython-$MP_VERSION
    tmp=$MP_SRC.tmp
    rm -rf "$tmp" "$MP_SRC"
    say "unpacking micropython $MP_VERSION ..."
    # dpkg-source applies debian/patches/series (format 3.0 quilt) and leaves debian/ in the
    # tree; the build needs it (patch 0004 makes mpversion.h from debian/changelog).
    logged dpkg-source dpkg-source -x "$dsc" "$tmp"
    local want have
    want=$(grep -cv '^\s*\(#\|$\)' "$tmp/debian/patches/series" || true)
    have=$(wc -l <"$tmp/.pc/applied-patches" 2>/dev/null || echo 0)
    if ((have == 0 && want > 0)); then          # older dpkg-source / --skip-patches: do it here
        local p
        while read -r p _; do
            [[ -z $p || $p == \#* ]] && continue
            patch -d "$tmp" -p1 --forward --quiet <"$tmp/debian/patches/$p" || die "patch $p failed"
        done <"$tmp/debian/patches/series"
    elif ((have != want)); then
        die "only $have of $want Debian patches applied in $tmp"
    fi
    mv "$tmp" "$MP_SRC"
    echo "$MP_VERSION $MP_SRC" >"$SRC_BASE/ready"
}

# recipe TARGET: what a build of TARGET depends on; a change triggers a rebuild.
recipe() {
    local v=${MP_VERSION:-none}
    case $1 in
        mpy-cross) echo "rev=$RECIPE_REV src=$v" ;;
        *) echo "rev=$RECIPE_REV src=$v bits=${1#micropython-} ${PORT_VARS[*]//$ROOT/ROOT}" \
                "manifest=$(sha256sum <"$MANIFEST" | cut -c1-16)" ;;
    esac
}
up_to_date() {   # up_to_date TARGET
    [[ -x $BIN/$1 && ! -L $BIN/$1 && -f $BIN/.$1.recipe && -f $SRC_BASE/ready ]] || return 1
    read -r MP_VERSION MP_SRC <"$SRC_BASE/ready"
    [[ $(recipe "$1") == "$(cat "$BIN/.$1.recipe")" ]]
}

build_mpy_cross() {
    say "building mpy-cross ..."
    logged build-mpy-cross make -C "$MP_SRC/mpy-cross" -j"$JOBS"
    rm -f "$BIN/mpy-cross"
    cp "$MP_SRC/mpy-cross/build/mpy-cross" "$BIN/mpy-cross"
    recipe mpy-cross >"$BIN/.mpy-cross.recipe"
}

build_unix() {   # build_unix 64|32
    local bits=$1 vars
    vars=(BUILD="build-$bits" PROG="micropython-$bits" "${PORT_VARS[@]}")
    # gcc -m32 via gcc-multilib; the port's Makefile adds -m32 to CC/LD for this.
    [[ $bits == 32 ]] && vars+=(MICROPY_FORCE_32BIT=1)
    say "building micropython $bits-bit ..."
    rm -rf "$MP_SRC/ports/unix/build-$bits"     # the recipe changed: no stale objects
    logged "build-micropython-$bits" make -C "$MP_SRC/ports/unix" -j"$JOBS" "${vars[@]}"
    rm -f "$BIN/micropython-$bits"
    cp "$MP_SRC/ports/unix/build-$bits/micropython-$bits" "$BIN/micropython-$bits"
    recipe "micropython-$bits" >"$BIN/.micropython-$bits.recipe"
}

# `build-micropython.sh romfs`: .cache/bin/micropython-32-romfs, the 32-bit unix port with the
# ROMFS image $MICROPY_ROMFS mapped outside the heap (tools/unix-romfs.patch; bench/cabinet_heap.py
# --romfs, docs/benchmarks.md). Built in a copy of the source tree (the tree itself stays as
# Debian's), only when asked for; nothing else uses it.
ROMFS_PATCH=$ROOT/tools/unix-romfs.patch
if [[ ${1:-} == romfs ]]; then
    target=micropython-32-romfs
    if [[ -f $SRC_BASE/ready ]]; then read -r MP_VERSION MP_SRC <"$SRC_BASE/ready"; fi
    want="$(recipe micropython-32) romfs=$(sha256sum <"$ROMFS_PATCH" | cut -c1-16)"
    if [[ -x $BIN/$target && -f $BIN/.$target.recipe && $(cat "$BIN/.$target.recipe") == "$want" ]]; then
        say "$target: up to date"
        exit 0
    fi
    command -v gcc >/dev/null || die "gcc missing: run tools/setup.sh (installs build-essential, gcc-multilib)"
    up_to_date mpy-cross || build_mpy_cross
    ensure_source
    copy=$CACHE/romfs-src
    say "building $target (a copy of the source tree with $ROMFS_PATCH) ..."
    rm -rf "$copy" && mkdir -p "$copy"
    (cd "$MP_SRC" && tar cf - --exclude='./ports/unix/build-*' --exclude='./ports/*/build*' .) | (cd "$copy" && tar xf -)
    patch -d "$copy" -p1 --forward --quiet <"$ROMFS_PATCH" || die "$ROMFS_PATCH does not apply to $MP_SRC"
    logged "build-$target" make -C "$copy/ports/unix" -j"$JOBS" BUILD=build-32 PROG=$target \
        MICROPY_FORCE_32BIT=1 CFLAGS_EXTRA=-DMICROPY_VFS_ROM_IOCTL=1 "${PORT_VARS[@]}"
    rm -f "$BIN/$target"
    cp "$copy/ports/unix/build-32/$target" "$BIN/$target"
    rm -rf "$copy"
    echo "$want" >"$BIN/.$target.recipe"
    say "$target: $("$BIN/$target" -c 'import sys, vfs; print(sys.version.split("; ", 1)[-1], "rom_ioctl" if hasattr(vfs, "rom_ioctl") else "NO rom_ioctl")')"
    exit 0
fi

# `build-micropython.sh frozen MANIFEST`: .cache/bin/micropython-32-frozen, the 32-bit unix port
# with the firmware frozen in, as a board image has it (bench/cabinet_heap.py --frozen,
# tests/test_cabinet_heap.py). MANIFEST is the one `mbnode build --board unix` writes
# (build/unix/frozen/manifest.py); the port's own (asyncio) and umqtt.simple (.cache/lib) are
# frozen beside it. Built in a copy of the source tree kept at .cache/frozen-src, so a change of
# the firmware rebuilds only what make finds changed (about 20 s; the first build about 100 s).
if [[ ${1:-} == frozen ]]; then
    target=micropython-32-frozen
    fw_manifest=${2:-}
    [[ -f $fw_manifest ]] || die "frozen: give the manifest \`mbnode build --board unix\` wrote (build/unix/frozen/manifest.py)"
    fw_manifest=$(cd "$(dirname "$fw_manifest")" && pwd)/$(basename "$fw_manifest")
    [[ -f $CACHE/lib/umqtt/simple.py ]] || die "frozen: $CACHE/lib/umqtt/simple.py missing: run make setup"
    command -v gcc >/dev/null || die "gcc missing: run tools/setup.sh (installs build-essential, gcc-multilib)"
    up_to_date mpy-cross || build_mpy_cross
    ensure_source
    copy=$CACHE/frozen-src
    stamp="$(recipe micropython-32)"
    if [[ ! -f $copy/.mbnode-recipe || $(cat "$copy/.mbnode-recipe") != "$stamp" ]]; then
        say "copying the source tree for $target ..."
        rm -rf "$copy" && mkdir -p "$copy"
        (cd "$MP_SRC" && tar cf - --exclude='./ports/unix/build-*' --exclude='./ports/*/build*' .) | (cd "$copy" && tar xf -)
        echo "$stamp" >"$copy/.mbnode-recipe"
    fi
    cat >"$copy/mbnode-manifest.py" <<EOF
# written by tools/build-micropython.sh frozen: the port's modules, the firmware, umqtt.simple
include("$MANIFEST")
include("$fw_manifest", base=None, main=True)
package("umqtt", base_path="$CACHE/lib")
EOF
    say "building $target (firmware frozen from $fw_manifest) ..."
    # mpy-cross needs the architecture for the firmware's viper functions (crc.py, fast.py)
    logged "build-$target" make -C "$copy/ports/unix" -j"$JOBS" BUILD=build-32 PROG=$target \
        MICROPY_FORCE_32BIT=1 MPY_CROSS_FLAGS=-march=x86 "${PORT_VARS[@]/#FROZEN_MANIFEST=*/FROZEN_MANIFEST=$copy/mbnode-manifest.py}"
    rm -f "$BIN/$target"
    cp "$copy/ports/unix/build-32/$target" "$BIN/$target"
    exit 0
fi

# --------------------------------------------------------------------------------------------
todo=()
adopt 64 || up_to_date micropython-64 || todo+=(micropython-64)
adopt 32 || up_to_date micropython-32 || todo+=(micropython-32)
up_to_date mpy-cross || todo=(mpy-cross "${todo[@]}")   # the port builds use it to freeze asyncio

if ((${#todo[@]})); then
    command -v gcc >/dev/null || die "gcc missing: run tools/setup.sh (installs build-essential, gcc-multilib)"
    ensure_source
    for t in "${todo[@]}"; do
        case $t in
            mpy-cross) build_mpy_cross ;;
            micropython-*) build_unix "${t#micropython-}" ;;
        esac
    done
fi

# --------------------------------------------------------------------------------------------
# Verify all three every run (a few ms): right word size, required modules, emitters, and that
# .mpy files from our mpy-cross load (bytecode, and native code for the binary's architecture).
MPY_CROSS_VERSION=$("$BIN/mpy-cross" --version)
chk=$CACHE/tmp/mpy-check
rm -rf "$chk" && mkdir -p "$chk"
printf 'def f():\n    return 42\n' >"$chk/plain_mod.py"
printf 'import micropython\n@micropython.viper\ndef f() -> int:\n    return int(42)\n' >"$chk/viper_mod.py"
"$BIN/mpy-cross" -o "$chk/plain_mod.mpy" "$chk/plain_mod.py"
for bits in 64 32; do
    mp=$BIN/micropython-$bits
    line=$(probe "$mp" || true)
    [[ -n $line ]] || die "$mp does not run or lacks a required module: $("$mp" -c "$CHECK_PY" 2>&1 | tail -n2 | tr '\n' ' ')"
    [[ $(field maxsize "$line") == "$(maxsize_for "$bits")" ]] || die "$mp is not $bits-bit: $line"
    mpy=$(field mpy "$line")
    # sys.implementation._mpy: bits 0-7 .mpy version, 8-9 sub-version, 10+ native arch.
    case $((mpy >> 10)) in 1) arch=x86 ;; 2) arch=x64 ;; *) arch= ;; esac
    # .mpy compatibility with our mpy-cross (matters for `mbnode sim --mpy`).
    mpyload=ok
    "$mp" -c "import sys; sys.path[:0] = ['$chk']; import plain_mod; assert plain_mod.f() == 42" 2>/dev/null || mpyload=FAILED
    if [[ $(field viper "$line") == ok && -n $arch ]]; then
        mkdir -p "$chk/$arch"
        "$BIN/mpy-cross" -march="$arch" -o "$chk/$arch/viper_mod.mpy" "$chk/viper_mod.py"
        "$mp" -c "import sys; sys.path[:0] = ['$chk/$arch']; import viper_mod; assert viper_mod.f() == 42" 2>/dev/null \
            || mpyload+=" native-mpy=FAILED"
    fi
    ver=$("$mp" -c 'import sys; print(sys.version.split("; ", 1)[-1])')
    say "micropython-$bits: $ver, sys.maxsize=$(field maxsize "$line"), _mpy=$mpy (arch ${arch:-?})," \
        "viper=$(field viper "$line") native=$(field native "$line") mpy-load=$mpyload"
    [[ $(field viper "$line") == ok ]] || say "WARNING: the viper emitter is NOT available in micropython-$bits"
    if [[ $mpyload != ok ]]; then
        msg=".mpy from $MPY_CROSS_VERSION does not load in micropython-$bits ($mpyload)"
        if [[ -n ${ADOPTED[$bits]:-} ]]; then say "WARNING: $msg"; else die "$msg"; fi
    fi
done
say "mpy-cross: $MPY_CROSS_VERSION"
rm -rf "$chk"
