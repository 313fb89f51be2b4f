# Frozen-module manifest of the plain rp2 (RPI_PICO) firmware that tools/setup-mcu.sh builds:
# what the port's own boards/manifest.py freezes, minus the micropython-lib drivers (onewire,
# ds18x20, dht, neopixel), which the Debian +ds source tree does not carry. mbnode is not in
# it: the MCU tests deploy mbnode onto this firmware as .mpy files, the way a user with a stock
# MicroPython does. `mbnode build --board pico --image` freezes mbnode with its own manifest.
freeze("$(PORT_DIR)/modules")
include("$(MPY_DIR)/extmod/asyncio")
