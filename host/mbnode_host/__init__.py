"""CPython host tools for mbnode: simulator launcher, I/O control, build and Modbus helpers."""
