# Frozen-module manifest for the unix-port builds made by tools/build-micropython.sh.
#
# Same content as the port's own default (ports/unix/variants/manifest.py): only asyncio.
# We name our own file so the build does not depend on Debian's debian/config/manifest.py,
# which pulls mip/ssl/unix-ffi from lib/micropython-lib, stripped from the +ds tarball.
# Do not freeze firmware/ here: `mbnode sim` must run the real sources (or their .mpy).
include("$(MPY_DIR)/extmod/asyncio")
