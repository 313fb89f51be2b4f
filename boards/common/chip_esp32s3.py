"""ESP32-S3 pin facts (ESP32-S3 datasheet, "Pin Overview"; ESP32-S3 technical reference manual,
IO MUX and GPIO matrix; MicroPython's esp32 port, machine_pin.h and machine_adc.c).

GPIO0-21, 26-48 (there is no GPIO22-25); GPIO26-32 carry the SPI flash and PSRAM, and on modules
with octal flash or PSRAM (R8, R16V: the DevKitC-1 N8R8, N16R8, N32R8V) GPIO33-37 too. No pin is
input-only. ADC1: GPIO1-10; ADC2 (GPIO11-20) cannot be read while Wi-Fi runs. A UART reaches any
pin through the GPIO matrix; UART0 is MicroPython's REPL. Ranges are (first, last) pairs.
"""

NAME = "ESP32-S3"
PIN = "GPIO"
GPIOS = ((0, 21), (26, 48))
UNUSABLE = ((26, 32, "is wired to the SPI flash and PSRAM"), (33, 37, "is wired to octal flash or PSRAM"))
INPUT_ONLY = ()
ADC1 = ((1, 10),)
ADC2 = ((11, 20),)
ADC2_ALWAYS = False
ADC2_PROBLEM = "is on ADC2, which Wi-Fi takes over (board.wifi_ssid is set)"
UARTS = {1: None, 2: None}
UART_NOTE = "UART0 is MicroPython's REPL on the ESP32-S3"
