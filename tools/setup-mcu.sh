#!/usr/bin/env bash
# Set-up of the emulated microcontrollers (`make setup-mcu`, after `make setup`), idempotent: a
# second run only checks stamps and takes well under 5 s. Everything goes to .cache/mcu/:
#
#   micropython/        a copy of the Debian MicroPython 1.25 source tree that tools/setup.sh
#                       unpacked, with trixie's pico-sdk-source and tinyusb-source at lib/pico-sdk
#                       and lib/tinyusb, and tools/mcu/*.patch applied (the +ds tree lacks mbedtls)
#   rp2/RPI_PICO/       the plain rp2 firmware (firmware.bin, firmware.elf) for the emulated Pico
#   rp2/RPI_PICO-as-1.22/  the same firmware reporting MicroPython 1.22 and .mpy 6.2, as a board with
#                       an older release does (it refuses .mpy 6.3 native code as 1.22 would): the
#                       MCU tests prove that `mbnode deploy` refuses such a board
#   qemu/<BOARD>.elf    the qemu port for MICROBIT (Cortex-M0, armv6m, native emitter switched
#                       on), MPS2_AN385 (Cortex-M3, armv7m) and VIRT_RV32 (rv32imc)
#   npm/node_modules    rp2040js as pinned by tests/mcu/emu/package-lock.json
#
# Needs .cache/bin/mpy-cross and the unpacked source (tools/setup.sh). Environment: JOBS (make -j,
# default nproc), MBNODE_DEBIAN_MIRROR (see tools/debian-archive.sh).
set -eEuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$ROOT/.cache
LOGS=$CACHE/logs
MCU=$CACHE/mcu
TREE=$MCU/micropython
JOBS=${JOBS:-$(nproc)}
RECIPE_REV=2                     # bump to force rebuilds after changing this script
SDK_SUITE=trixie                 # pico-sdk-source 2.1.1 and tinyusb-source 0.18.0, as 1.25 expects
SDK_PKGS=(pico-sdk-source tinyusb-source)
QEMU_BOARDS=(MICROBIT MPS2_AN385 VIRT_RV32)

APT_PKGS=(
    gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib cmake   # rp2, qemu arm
    gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf                             # qemu VIRT_RV32
    qemu-system-arm qemu-system-misc                                                 # the emulators
)

# shellcheck source=tools/common.sh
source "$ROOT/tools/common.sh"
# shellcheck source=tools/debian-archive.sh
source "$ROOT/tools/debian-archive.sh"

start=$SECONDS
mkdir -p "$MCU" "$LOGS"
exec 9>"$CACHE/setup.lock"
flock 9

[[ -x $CACHE/bin/mpy-cross && -f $CACHE/src/ready ]] || die "run tools/setup.sh (make setup) first"
read -r MP_VERSION MP_SRC <"$CACHE/src/ready"
[[ -d $MP_SRC ]] || die "$MP_SRC is gone: run tools/setup.sh (make setup) again"
export MICROPY_MPYCROSS=$CACHE/bin/mpy-cross   # the ports' frozen code uses ours, no rebuild
# The version the firmware reports: the tree has no git repository of its own, and `git describe`
# would otherwise find this project's (.cache/ lies inside it) and report an mbnode commit.
export MICROPY_GIT_TAG="v$MP_VERSION" MICROPY_GIT_HASH="debian"

# ---- apt packages ---------------------------------------------------------------------------
command -v node >/dev/null && command -v npm >/dev/null || APT_PKGS+=(nodejs npm)
apt_install apt-install-mcu "${APT_PKGS[@]}"

# ---- stamps ---------------------------------------------------------------------------------
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
PATCHES=("$ROOT"/tools/mcu/*.patch)
tree_recipe() { echo "rev=$RECIPE_REV src=$MP_VERSION sdk=${SDK_PKGS[*]}@$SDK_SUITE patches=$(hash_of "${PATCHES[@]}")"; }
fresh() { [[ -f $1 && -f $1.recipe && $(cat "$1.recipe") == "$2" ]]; }   # fresh OUTPUT RECIPE
stamp() { echo "$2" >"$1.recipe"; }

# ---- the source tree with pico-sdk and tinyusb ------------------------------------------------
ensure_tree() {
    local want stage dl deb
    want=$(tree_recipe)
    fresh "$TREE/.mbnode-tree" "$want" && return 0
    say "preparing the MicroPython tree for the MCU ports ($MP_VERSION + ${SDK_PKGS[*]} from $SDK_SUITE) ..."
    dl=$MCU/dl
    rm -rf "$dl" && mkdir -p "$dl"
    private_apt "$CACHE/apt-$SDK_SUITE-bin" deb "$SDK_SUITE"
    logged apt-sdk-update apt-get "${PRIVATE_APT[@]}" update
    (cd "$dl" && apt-get "${PRIVATE_APT[@]}" download "${SDK_PKGS[@]}") >"$LOGS/apt-sdk-download.log" 2>&1 \
        || { tail -n 20 "$LOGS/apt-sdk-download.log" >&2; die "downloading ${SDK_PKGS[*]} failed (log: .cache/logs/apt-sdk-download.log)"; }
    stage=$MCU/micropython.tmp
    rm -rf "$stage" "$TREE"
    cp -a "$MP_SRC" "$stage"
    rm -rf "$stage"/ports/*/build* "$stage/mpy-cross/build"
    for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$dl/root"; done
    [[ -f $dl/root/usr/src/pico-sdk/pico_sdk_init.cmake && -d $dl/root/usr/src/tinyusb/src ]] \
        || die "pico-sdk-source/tinyusb-source did not unpack to usr/src/pico-sdk and usr/src/tinyusb"
    rm -rf "$stage/lib/pico-sdk" "$stage/lib/tinyusb"
    mv "$dl/root/usr/src/pico-sdk" "$stage/lib/pico-sdk"
    mv "$dl/root/usr/src/tinyusb" "$stage/lib/tinyusb"
    local p
    for p in "${PATCHES[@]}"; do
        patch -d "$stage" -p1 --forward --quiet <"$p" >>"$LOGS/mcu-patch.log" 2>&1 || die "patch ${p#"$ROOT"/} failed"
    done
    # The manifests name every module, so micropython-lib (stripped from +ds) is never read; the
    # build only wants its directory to exist.
    mkdir -p "$MCU/no-micropython-lib"
    echo "Empty on purpose: mbnode's manifests freeze no micropython-lib package." >"$MCU/no-micropython-lib/README.md"
    mv "$stage" "$TREE"
    rm -rf "$dl"
    touch "$TREE/.mbnode-tree"
    stamp "$TREE/.mbnode-tree" "$want"
}

# ---- rp2 (RPI_PICO) ----------------------------------------------------------------------------
# rp2_build BUILD_DIR MANIFEST [cmake -D options...]: configure (once) and build the rp2 port.
# Also used by `mbnode build --image` (host/mbnode_host/image.py) with its own build dir/manifest.
rp2_build() {
    local dir=$1 manifest=$2
    shift 2
    cmake -S "$TREE/ports/rp2" -B "$dir" -DMICROPY_BOARD=RPI_PICO -DPICO_BUILD_DOCS=0 \
        -Dpicotool_FOUND=0 -DMICROPY_LIB_DIR="$MCU/no-micropython-lib" \
        -DMICROPY_FROZEN_MANIFEST="$manifest" "$@"
    make -C "$dir" -j"$JOBS"
}

build_rp2() {
    local out=$MCU/rp2/RPI_PICO want
    want="$(tree_recipe) manifest=$(hash_of "$ROOT/tools/mcu/rp2-manifest.py")"
    fresh "$out/firmware.bin" "$want" && return 0
    say "building the rp2 port (RPI_PICO) ..."
    rm -rf "$TREE/ports/rp2/build-RPI_PICO"
    logged build-rp2 rp2_build "$TREE/ports/rp2/build-RPI_PICO" "$ROOT/tools/mcu/rp2-manifest.py"
    mkdir -p "$out"
    cp "$TREE/ports/rp2/build-RPI_PICO/firmware.elf" "$TREE/ports/rp2/build-RPI_PICO/firmware.bin" "$out/"
    stamp "$out/firmware.bin" "$want"
}

# The plain firmware with the version numbers of MicroPython 1.22 (.mpy sub-version 2), built in
# a hard-linked copy of the tree whose two version headers are rewritten.
build_rp2_old() {
    local out=$MCU/rp2/RPI_PICO-as-1.22 old=$MCU/micropython-as-1.22 want
    want="$(tree_recipe) manifest=$(hash_of "$ROOT/tools/mcu/rp2-manifest.py") as=1.22"
    fresh "$out/firmware.bin" "$want" && return 0
    say "building the rp2 port (RPI_PICO) reporting MicroPython 1.22 ..."
    rm -rf "$old"
    cp -al "$TREE" "$old"
    rm -rf "$old/ports/rp2"/build*
    # sed -i writes new files, so the originals the links share stay as they are.
    sed -i 's/^#define MICROPY_VERSION_MINOR 25$/#define MICROPY_VERSION_MINOR 22/' "$old/py/mpconfig.h"
    sed -i 's/^#define MPY_SUB_VERSION 3$/#define MPY_SUB_VERSION 2/' "$old/py/persistentcode.h"
    grep -q '^#define MICROPY_VERSION_MINOR 22$' "$old/py/mpconfig.h" && grep -q '^#define MPY_SUB_VERSION 2$' "$old/py/persistentcode.h" \
        || die "could not rewrite the version headers of the 1.22 stand-in"
    TREE=$old MICROPY_GIT_TAG=v1.22.0 logged build-rp2-as-1.22 rp2_build "$old/ports/rp2/build-RPI_PICO" \
        "$ROOT/tools/mcu/rp2-manifest.py"
    mkdir -p "$out"
    cp "$old/ports/rp2/build-RPI_PICO/firmware.bin" "$out/"
    rm -rf "$old"
    stamp "$out/firmware.bin" "$want"
}

# ---- qemu port -------------------------------------------------------------------------------
qemu_vars() {   # make variables per board
    # No frozen modules (the port's default freezes micropython-lib's unittest).
    local v=(BOARD="$1" FROZEN_MANIFEST=)
    case $1 in
        # The port leaves the native emitters off on the nRF51 SoC; the armv6m Thumb emitter (no
        # armv7m instructions) is what an RP2040 runs viper code with.
        MICROBIT) v+=(CFLAGS_EXTRA="-DMICROPY_EMIT_THUMB=1 -DMICROPY_EMIT_THUMB_ARMV7M=0") ;;
        # bookworm's GCC 12 picks the wrong multilib for rv32imac_zicsr: name the ISA the old way.
        VIRT_RV32) v+=(RV32_ARCH="rv32imac -misa-spec=2.2") ;;
    esac
    printf '%s\n' "${v[@]}"
}

build_qemu() {
    local board=$1 out=$MCU/qemu/$1.elf want vars
    mapfile -t vars < <(qemu_vars "$board")
    want="$(tree_recipe) ${vars[*]}"
    fresh "$out" "$want" && return 0
    say "building the qemu port ($board) ..."
    rm -rf "$TREE/ports/qemu/build-$board"
    logged "build-qemu-$board" make -C "$TREE/ports/qemu" -j"$JOBS" "${vars[@]}"
    mkdir -p "$MCU/qemu"
    cp "$TREE/ports/qemu/build-$board/firmware.elf" "$out"
    stamp "$out" "$want"
}

# ---- rp2040js ---------------------------------------------------------------------------------
install_rp2040js() {
    local npmdir=$MCU/npm want
    want=$(hash_of "$ROOT/tests/mcu/emu/package.json" "$ROOT/tests/mcu/emu/package-lock.json")
    fresh "$npmdir/node_modules/.mbnode" "$want" && [[ -d $npmdir/node_modules/rp2040js ]] && return 0
    say "installing rp2040js (npm ci) ..."
    mkdir -p "$npmdir"
    cp "$ROOT/tests/mcu/emu/package.json" "$ROOT/tests/mcu/emu/package-lock.json" "$npmdir/"
    (cd "$npmdir" && logged npm-ci npm ci --no-audit --no-fund --loglevel=error)
    touch "$npmdir/node_modules/.mbnode"
    stamp "$npmdir/node_modules/.mbnode" "$want"
}

if [[ ${1:-} == rp2-build ]]; then   # tools/setup-mcu.sh rp2-build DIR MANIFEST [-D...]: for image.py
    shift
    ensure_tree
    rp2_build "$@"
    exit
fi

ensure_tree
build_rp2
build_rp2_old
for b in "${QEMU_BOARDS[@]}"; do build_qemu "$b"; done
install_rp2040js
say "mcu done in $((SECONDS - start)) s: rp2 $(stat -c %s "$MCU/rp2/RPI_PICO/firmware.bin") bytes," \
    "qemu ${QEMU_BOARDS[*]}, rp2040js $(node -p "require('$MCU/npm/node_modules/rp2040js/package.json').version")"
