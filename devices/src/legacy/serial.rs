//! A 16550A UART (COM1) on the port-I/O bus, modelled by `vm-superio`.
//!
//! Output goes to any `Write` (stdout in the VMM); input is queued by the
//! event loop through [`SerialDevice::enqueue_input`], which takes only
//! what fits in the receive FIFO. When the FIFO is full the event loop
//! holds the rest back ([`SerialDevice::want_room`]) and the device
//! signals [`SerialDevice::room_eventfd`] once the guest has read a byte,
//! so input is never dropped. The VMM creates no interrupt controller, so
//! the interrupt line is an eventfd nobody has to listen to: guests poll
//! the line status register.

use std::io::{self, Write};

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::bus::{put_le_value, BusDevice};

/// The I/O port base of COM1.
pub const COM1_PORT: u16 = 0x3f8;
/// Number of registers (ports) of a 16550.
pub const SERIAL_PORT_LEN: u64 = 8;

/// An interrupt line backed by an eventfd.
#[derive(Debug)]
pub struct IrqEvent(EventFd);

impl IrqEvent {
    /// A new, unsignalled line.
    pub fn new() -> io::Result<Self> {
        Ok(IrqEvent(EventFd::new(EFD_NONBLOCK)?))
    }

    /// The eventfd (e.g. to register as an irqfd).
    pub fn eventfd(&self) -> &EventFd {
        &self.0
    }
}

impl Trigger for IrqEvent {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

type Uart = Serial<IrqEvent, vm_superio::serial::NoEvents, Box<dyn Write + Send>>;

/// The serial device as seen by the bus.
pub struct SerialDevice {
    uart: Uart,
    /// Signalled when the guest frees room in the receive FIFO while
    /// `waiting_for_room`.
    room: EventFd,
    waiting_for_room: bool,
}

impl std::fmt::Debug for SerialDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialDevice").finish_non_exhaustive()
    }
}

impl SerialDevice {
    /// A UART writing its output to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> io::Result<Self> {
        Ok(SerialDevice {
            uart: Serial::new(IrqEvent::new()?, out),
            room: EventFd::new(EFD_NONBLOCK)?,
            waiting_for_room: false,
        })
    }

    /// Room left in the receive FIFO.
    pub fn input_capacity(&self) -> usize {
        self.uart.fifo_capacity()
    }

    /// Queues bytes the guest will read from the receive buffer. Returns
    /// how many were taken (none when the FIFO is full or the UART is in
    /// loopback mode); the caller keeps the rest.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        self.uart.enqueue_raw_bytes(bytes).unwrap_or(0)
    }

    /// Asks for [`Self::room_eventfd`] to be signalled the next time the
    /// guest reads the receive buffer (input is waiting for room).
    pub fn want_room(&mut self) {
        self.waiting_for_room = true;
    }

    /// Signalled when the guest has read from the receive buffer after
    /// [`Self::want_room`].
    pub fn room_eventfd(&self) -> &EventFd {
        &self.room
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (u8::try_from(offset), data.len()) {
            (Ok(off), 1) => {
                data[0] = self.uart.read(off);
                if self.waiting_for_room && self.uart.fifo_capacity() > 0 {
                    self.waiting_for_room = false;
                    if let Err(e) = self.room.write(1) {
                        crate::warn_limited!("serial: cannot signal room in the receive FIFO: {e}");
                    }
                }
            }
            _ => {
                crate::warn_limited!("serial: unsupported {}-byte read at offset {offset}", data.len());
                put_le_value(data, u64::MAX);
            }
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (u8::try_from(offset), data) {
            (Ok(off), [value]) => {
                if let Err(e) = self.uart.write(off, *value) {
                    crate::warn_limited!("serial: write to offset {offset} failed: {e}");
                }
            }
            _ => crate::warn_limited!("serial: unsupported {}-byte write at offset {offset}", data.len()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A `Write` whose bytes the test can read back.
    #[derive(Clone, Default)]
    pub(crate) struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

    impl Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const LSR: u64 = 5;
    const LSR_DATA_READY: u8 = 1;
    const LSR_THR_EMPTY: u8 = 0x20;

    #[test]
    fn output_reaches_writer() {
        let buf = SharedBuf::default();
        let mut s = SerialDevice::new(Box::new(buf.clone())).unwrap();
        let mut lsr = [0u8];
        s.read(LSR, &mut lsr);
        assert_ne!(lsr[0] & LSR_THR_EMPTY, 0);
        for b in b"hello\n" {
            s.write(0, &[*b]);
        }
        assert_eq!(&*buf.0.lock().unwrap(), b"hello\n");
    }

    #[test]
    fn input_is_readable() {
        let mut s = SerialDevice::new(Box::new(io::sink())).unwrap();
        assert_eq!(s.enqueue_input(b"ok"), 2);
        let mut d = [0u8];
        s.read(LSR, &mut d);
        assert_ne!(d[0] & LSR_DATA_READY, 0);
        s.read(0, &mut d);
        assert_eq!(d[0], b'o');
        s.read(0, &mut d);
        assert_eq!(d[0], b'k');
        s.read(LSR, &mut d);
        assert_eq!(d[0] & LSR_DATA_READY, 0);
    }

    #[test]
    fn a_full_fifo_takes_nothing_and_signals_room_once_read() {
        let mut s = SerialDevice::new(Box::new(io::sink())).unwrap();
        let cap = s.input_capacity();
        let big = vec![b'x'; cap + 10];
        assert_eq!(s.enqueue_input(&big), cap);
        assert_eq!(s.enqueue_input(b"y"), 0);
        // Not asked: a read signals nothing.
        let mut d = [0u8];
        s.read(0, &mut d);
        assert!(s.room_eventfd().read().is_err());
        assert_eq!(s.enqueue_input(b"y"), 1);
        s.want_room();
        s.read(LSR, &mut d);
        assert!(s.room_eventfd().read().is_err(), "an LSR read frees no room");
        s.read(0, &mut d);
        assert_eq!(s.room_eventfd().read().unwrap(), 1);
        // One signal per request.
        s.read(0, &mut d);
        assert!(s.room_eventfd().read().is_err());
    }

    #[test]
    fn wide_accesses_are_refused() {
        let buf = SharedBuf::default();
        let mut s = SerialDevice::new(Box::new(buf.clone())).unwrap();
        s.write(0, b"ab");
        assert!(buf.0.lock().unwrap().is_empty());
        let mut d = [0u8; 2];
        s.read(0, &mut d);
        assert_eq!(d, [0xff, 0xff]);
    }
}
