"""What the device knows of its own health, in one small object the parts share.

startup.build makes one and hands it to the parts that report (fail-safe, the saves to flash, the
TCP slave, the serial lines) and to those that show it (the status registers of
mbnode.sysregs, the MQTT status, the status LED). Each field has one writer; nobody reaches
into another part's fields for these figures.
"""


class Health:
    def __init__(self):
        self.failsafe = 0  # 1 while fail-safe holds the outputs in their safe values (mbnode.failsafe)
        # Saves to flash since boot (settings, retained memory, custom block writes), each counted once.
        self.flash_writes = 0
        self.tcp = None  # the TcpSlave, when Modbus TCP is on: its clients() is the connections served
        self.line = None  # the slave line's LineDiagnostics (mbnode.diag), when there is one: CRC errors
        self.link = None  # the slave line's RtuLink (made by mbnode.startup): retained memory saves when it is quiet
        self.masters = ()  # the serial lines in master mode (RtuMaster; startup.build adds each): saves hold them
        self.retain = None  # mbnode.retain's part, when configured: the settings block's "save" calls save_now()
        # Faults, bits (status register 0x200F, the status LED's fast blinking): FAULT_CONFIG set by
        # startup.build when config.json was refused and the board runs its defaults; FAULT_FLASH set by a
        # save to flash that failed (settings, retained memory), cleared by the next that succeeds.
        self.fault = 0


FAULT_CONFIG = 1
FAULT_FLASH = 2
