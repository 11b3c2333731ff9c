//! The exit port: a write of `value` ends the guest with process exit
//! status `(value << 1) | 1`, like QEMU's `isa-debug-exit` device at
//! `iobase=0xf4`, so existing test guests work unchanged.
//!
//! The device only *records* the request in an [`ExitLatch`]; stopping the
//! vCPUs and ending the process is the VMM's job (it checks the latch after
//! every exit and the event loop watches the latch's eventfd).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::bus::{le_value, put_le_value, BusDevice};

/// The conventional port of the exit device.
pub const EXIT_PORT: u16 = 0xf4;
/// Width of the exit port window (a 32-bit register).
pub const EXIT_PORT_LEN: u64 = 4;

/// A once-only "the guest asked to stop" flag with the status it asked for,
/// plus an eventfd that is signalled when it is set.
#[derive(Debug)]
pub struct ExitLatch {
    set: AtomicBool,
    status: Mutex<Option<i32>>,
    evt: EventFd,
}

impl ExitLatch {
    /// A latch that is not set.
    pub fn new() -> io::Result<Self> {
        Ok(ExitLatch { set: AtomicBool::new(false), status: Mutex::new(None), evt: EventFd::new(EFD_NONBLOCK)? })
    }

    /// Records `status` if nothing was recorded yet (the first request
    /// wins) and signals the eventfd. Returns whether this call set it.
    pub fn set(&self, status: i32) -> bool {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_some() {
            return false;
        }
        *s = Some(status);
        self.set.store(true, Ordering::Release);
        if let Err(e) = self.evt.write(1) {
            log::error!("cannot signal the exit eventfd: {e}");
        }
        true
    }

    /// Has an exit been requested? (A cheap check for vCPU loops.)
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// The requested status, if any.
    pub fn status(&self) -> Option<i32> {
        *self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The eventfd signalled when the latch is set.
    pub fn eventfd(&self) -> &EventFd {
        &self.evt
    }
}

/// The exit device. Any write (1, 2 or 4 bytes) requests an exit with
/// status `(value << 1) | 1`; reads return all-ones.
#[derive(Debug)]
pub struct ExitPort {
    latch: std::sync::Arc<ExitLatch>,
}

impl ExitPort {
    /// An exit port that reports into `latch`.
    pub fn new(latch: std::sync::Arc<ExitLatch>) -> Self {
        ExitPort { latch }
    }

    /// The status a write of `value` requests. The operating system keeps
    /// only the low 8 bits of a process exit status.
    pub fn status_for(value: u32) -> i32 {
        ((value << 1) | 1) as i32
    }
}

impl BusDevice for ExitPort {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        put_le_value(data, u64::MAX);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let value = (le_value(data) & u64::from(u32::MAX)) as u32;
        let status = Self::status_for(value);
        log::info!("guest wrote {value:#x} to the exit port (offset {offset}): exit status {status}");
        self.latch.set(status);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn write_sets_status_once() {
        let latch = Arc::new(ExitLatch::new().unwrap());
        let mut port = ExitPort::new(latch.clone());
        assert!(!latch.is_set());
        port.write(0, &[0x10]);
        assert!(latch.is_set());
        assert_eq!(latch.status(), Some(0x21));
        assert_eq!(latch.eventfd().read().unwrap(), 1);
        // The first request wins.
        port.write(0, &[0x00]);
        assert_eq!(latch.status(), Some(0x21));
    }

    #[test]
    fn statuses() {
        assert_eq!(ExitPort::status_for(0), 1);
        assert_eq!(ExitPort::status_for(1), 3);
        assert_eq!(ExitPort::status_for(0x7f), 0xff);
        let latch = Arc::new(ExitLatch::new().unwrap());
        let mut port = ExitPort::new(latch.clone());
        port.write(0, &[0x34, 0x12, 0, 0]);
        assert_eq!(latch.status(), Some(0x2469));
        let mut d = [0u8; 4];
        port.read(0, &mut d);
        assert_eq!(d, [0xff; 4]);
    }
}
