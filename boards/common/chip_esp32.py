"""ESP32 pin facts (ESP32 datasheet, "Pin Description"; ESP32 technical reference manual, IO_MUX
and RTC IO_MUX; MicroPython's esp32 port, machine_pin.h and machine_adc.c).

GPIO0-19, 21-23, 25-27, 32-39 (GPIO20 exists only on the ESP32-PICO-V3); GPIO6-11 carry the
SPI flash; GPIO34-39 are inputs without pull resistors. ADC1: GPIO32-39; ADC2 (GPIO0, 2, 4,
12-15, 25-27) cannot be read while Wi-Fi runs. A UART reaches any pin through the GPIO matrix;
UART0 is MicroPython's REPL. Ranges are (first, last) pairs.
"""

NAME = "ESP32"
PIN = "GPIO"
GPIOS = ((0, 19), (21, 23), (25, 27), (32, 39))
UNUSABLE = ((6, 11, "is wired to the SPI flash"),)
INPUT_ONLY = ((34, 39),)
ADC1 = ((32, 39),)
ADC2 = ((0, 0), (2, 2), (4, 4), (12, 15), (25, 27))
ADC2_ALWAYS = False
ADC2_PROBLEM = "is on ADC2, which Wi-Fi takes over (board.wifi_ssid is set)"
UARTS = {1: None, 2: None}
UART_NOTE = "UART0 is MicroPython's REPL on the ESP32"
