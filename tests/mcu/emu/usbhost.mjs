// The USB host the emulated Pico is plugged into: it enumerates the device, opens the CDC ACM
// serial port (DTR and RTS set) and keeps it open for as long as the device is attached, like a
// PC with a terminal open on /dev/ttyACM0.
//
// Gap 3 of docs/mcu-emulation.md: rp2040js' own USBCDC answers every OUT transfer the device
// arms at once, with an empty packet when it has nothing to send, and tinyusb re-arms at once:
// an interrupt storm that made MicroPython 3-4x slower. A real host NAKs an armed OUT endpoint
// until it has data, so here the armed transfer is held and completed only when there are bytes.

const SETUP_SET_ADDRESS = Uint8Array.of(0x00, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00);
const SETUP_SET_CONFIGURATION = Uint8Array.of(0x00, 0x09, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00);
// CDC SET_CONTROL_LINE_STATE, DTR | RTS, interface 0
const SETUP_LINE_STATE = Uint8Array.of(0x21, 0x22, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00);
const DESC_CONFIGURATION = 2;
const DESC_INTERFACE = 4;
const DESC_ENDPOINT = 5;
const CDC_DATA_CLASS = 0x0a;
// USB controller registers and bits (device mode) the host side touches
const USB_SOF_RD = 0x48;
const USB_INTE = 0x90;
const INTR_DEV_SOF = 1 << 17;
const FRAME_NS = 1e6; // a full-speed frame: the host sends a start-of-frame packet every 1 ms

function getConfigDescriptor(length) {
  return Uint8Array.of(0x80, 0x06, 0x00, DESC_CONFIGURATION, 0x00, 0x00, length & 0xff, length >> 8);
}

// The bulk IN/OUT endpoint numbers of the CDC data interface in a configuration descriptor.
function cdcEndpoints(desc) {
  const eps = { in: -1, out: -1 };
  let inData = false;
  for (let at = 0; at + 2 <= desc.length && desc[at] >= 2; at += desc[at]) {
    const type = desc[at + 1];
    if (type === DESC_INTERFACE) inData = desc[at + 5] === CDC_DATA_CLASS;
    if (type === DESC_ENDPOINT && inData && (desc[at + 3] & 3) === 2) {
      if (desc[at + 2] & 0x80) eps.in = desc[at + 2] & 0x0f;
      else eps.out = desc[at + 2] & 0x0f;
    }
  }
  return eps;
}

export class CdcHost {
  // onData(bytes): what the device sent; onConnect(): the port is open; both optional.
  constructor({ onData, onConnect } = {}) {
    this.onData = onData;
    this.onConnect = onConnect;
    this.usb = null;
    this.queue = []; // bytes from the host side, waiting for the device to arm its OUT endpoint
    this.queued = 0;
    this.stats = { out_transfers: 0, in_transfers: 0, naks_held: 0 };
  }

  get connected() {
    return this.stage === 'open';
  }

  // A new boot of the chip: start over with its USB controller.
  attach(usb, clock) {
    this.usb = usb;
    this.clock = clock;
    this.sofAlarm = clock.createAlarm(() => this.startOfFrame());
    this.sofPending = false;
    this.installSof(usb);
    this.stage = 'reset';
    this.descriptorSize = 0;
    this.descriptor = [];
    this.endpoints = { in: -1, out: -1 };
    this.armed = 0; // OUT transfer the device armed and the host holds (NAK), its size
    this.queue = [];
    this.queued = 0;
    usb.onUSBEnabled = () => usb.resetDevice();
    usb.onResetReceived = () => {
      this.stage = 'address';
      usb.sendSetupPacket(SETUP_SET_ADDRESS);
      this.scheduleSof();
    };
    usb.onEndpointWrite = (ep, data) => this.deviceWrote(ep, data);
    usb.onEndpointRead = (ep, size) => this.deviceArmed(ep, size);
  }

  // rp2040js raises no start-of-frame interrupt in device mode, yet tinyusb waits for SOFs
  // (MicroPython flushes what it printed before the port opened 16 frames after DTR). The bus
  // has a SOF every 1 ms; the alarm only runs while the firmware enables the SOF interrupt,
  // and reading SOF_RD clears it, as on the chip.
  installSof(usb) {
    const read = usb.readUint32.bind(usb);
    const write = usb.writeUint32.bind(usb);
    usb.readUint32 = (offset) => {
      if (offset === USB_SOF_RD && usb.intRaw & INTR_DEV_SOF) {
        usb.intRaw &= ~INTR_DEV_SOF;
        usb.checkInterrupts();
      }
      return read(offset);
    };
    usb.writeUint32 = (offset, value) => {
      write(offset, value);
      if (offset === USB_INTE) this.scheduleSof();
    };
  }

  scheduleSof() {
    const usb = this.usb;
    if (!usb || this.sofPending || !(usb.intEnable & INTR_DEV_SOF) || this.stage === 'reset') return;
    this.sofPending = true;
    const now = this.clock.nanos;
    this.sofAlarm.schedule((Math.floor(now / FRAME_NS) + 1) * FRAME_NS - now);
  }

  startOfFrame() {
    this.sofPending = false;
    const usb = this.usb;
    if (!usb) return;
    usb.sofFrameNumber = (usb.sofFrameNumber + 1) & 0x7ff;
    if (usb.intEnable & INTR_DEV_SOF) {
      usb.intRaw |= INTR_DEV_SOF;
      usb.checkInterrupts();
      this.scheduleSof();
    }
  }

  detach() {
    this.usb = null;
    this.stage = 'detached';
  }

  // Control transfers step by step: SET_ADDRESS, the configuration descriptor (its first 9
  // bytes give the total length), SET_CONFIGURATION, then DTR/RTS: the port is open.
  deviceWrote(ep, data) {
    const usb = this.usb;
    if (ep === 0) {
      switch (this.stage) {
        case 'address':
          if (data.length === 0) {
            this.stage = 'config-head';
            usb.sendSetupPacket(getConfigDescriptor(9));
          }
          return;
        case 'config-head':
          if (data.length >= 4 && data[1] === DESC_CONFIGURATION) {
            this.descriptorSize = data[2] | (data[3] << 8);
            this.descriptor = [];
            this.stage = 'config';
            usb.sendSetupPacket(getConfigDescriptor(this.descriptorSize));
          }
          return;
        case 'config':
          this.descriptor.push(...data);
          if (this.descriptor.length >= this.descriptorSize) {
            this.endpoints = cdcEndpoints(this.descriptor);
            this.stage = 'configure';
            usb.sendSetupPacket(SETUP_SET_CONFIGURATION);
          }
          return;
        case 'configure':
          if (data.length === 0) {
            this.stage = 'line-state';
            usb.sendSetupPacket(SETUP_LINE_STATE);
          }
          return;
        case 'line-state':
          if (data.length === 0) {
            this.stage = 'open';
            this.onConnect?.();
            this.feed();
          }
          return;
        default:
          return;
      }
    }
    if (ep === this.endpoints.in) {
      this.stats.in_transfers++;
      if (data.length) this.onData?.(Buffer.from(data));
    }
  }

  deviceArmed(ep, size) {
    if (ep !== this.endpoints.out) return;
    this.armed = size;
    if (!this.queued) this.stats.naks_held++;
    this.feed();
  }

  // Bytes typed on the host side.
  write(bytes) {
    if (!bytes.length) return;
    this.queue.push(Buffer.from(bytes));
    this.queued += bytes.length;
    this.feed();
  }

  feed() {
    if (!this.usb || this.stage !== 'open' || !this.armed || !this.queued) return;
    const n = Math.min(this.armed, this.queued);
    const out = Buffer.alloc(n);
    let at = 0;
    while (at < n) {
      const head = this.queue[0];
      const take = Math.min(head.length, n - at);
      head.copy(out, at, 0, take);
      at += take;
      if (take === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(take);
    }
    this.queued -= n;
    this.armed = 0;
    this.stats.out_transfers++;
    this.usb.endpointReadDone(this.endpoints.out, out);
  }
}
