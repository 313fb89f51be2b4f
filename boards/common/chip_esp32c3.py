"""ESP32-C3 pin facts (ESP32-C3 datasheet, "Pin Overview"; ESP32-C3 errata, SAR ADC2;
MicroPython's esp32 port, machine_pin.h and machine_adc.c).

GPIO0-21; GPIO12-17 carry the SPI flash and GPIO11 is its supply (VDD_SPI, a GPIO only after an
eFuse is burnt). No pin is input-only. ADC1: GPIO0-4; ADC2 (GPIO5) gives unreliable results on
this chip (errata) and Wi-Fi takes it over, so it is never used. Two UARTs, reaching any pin
through the GPIO matrix; UART0 is MicroPython's REPL. Ranges are (first, last) pairs.
"""

NAME = "ESP32-C3"
PIN = "GPIO"
GPIOS = ((0, 21),)
UNUSABLE = ((11, 11, "is VDD_SPI, the flash supply"), (12, 17, "is wired to the SPI flash"))
INPUT_ONLY = ()
ADC1 = ((0, 4),)
ADC2 = ((5, 5),)
ADC2_ALWAYS = True
ADC2_PROBLEM = "is on ADC2, which the ESP32-C3 cannot read reliably (chip errata) and Wi-Fi takes over"
UARTS = {1: None}
UART_NOTE = "the ESP32-C3 has UART0 and UART1, and UART0 is MicroPython's REPL"
