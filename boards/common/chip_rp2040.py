"""RP2040 pin facts (RP2040 datasheet, 2.19.2 "Function Select"; MicroPython's rp2 port).

GPIO0-29; the QSPI flash has pins of its own. ADC inputs are GPIO26-29. Each UART function sits
on fixed pins (the F2 column of the function table), so TX and RX must be one of those.
Ranges are (first, last) pairs; boards/common/pinrules.py reads them.
"""

NAME = "RP2040"
PIN = "GP"
GPIOS = ((0, 29),)
UNUSABLE = ()
INPUT_ONLY = ()
ADC1 = ((26, 29),)
ADC2 = ()
ADC2_ALWAYS = False
ADC2_PROBLEM = ""
# UART id: (pins that can carry its TX, pins that can carry its RX)
UARTS = {0: ((0, 12, 16, 28), (1, 13, 17, 29)), 1: ((4, 8, 20, 24), (5, 9, 21, 25))}
UART_NOTE = "the RP2040 has UART0 and UART1"
