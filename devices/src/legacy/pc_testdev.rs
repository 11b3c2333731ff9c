//! The pieces of QEMU's `pc-testdev` that test kernels use: a 4-byte
//! scratch port at `0xe0` (what is written reads back), a page-flush port
//! at `0xe4` (accepted and ignored: there is nothing to flush), 24
//! interrupt lines at ports `0x2000..0x2018` (writing a non-zero value
//! pulses the line; the VMM wires each line to an irqfd), and a 64 KiB
//! block of memory at `0xff00_0000` that lives behind MMIO exits, so
//! every access to it is emulated.
//!
//! What it does not do: level-triggered lines (a write of 0 does nothing,
//! a non-zero write is an edge), or anything else `pc-testdev` has.

use crate::bus::{put_le_value, BusDevice};
use crate::legacy::IrqEvent;

/// First port of the scratch and flush registers.
pub const TESTDEV_PORT: u16 = 0xe0;
/// Ports of the scratch (4) and flush (4) registers.
pub const TESTDEV_PORT_LEN: u64 = 8;
/// First port of the interrupt lines (one port per line).
pub const TESTDEV_IRQ_PORT: u16 = 0x2000;
/// Number of interrupt lines (the IOAPIC's pins).
pub const TESTDEV_IRQ_LINES: u64 = 24;
/// Guest-physical base of the emulated memory block.
pub const TESTDEV_IOMEM: u64 = 0xff00_0000;
/// Its size.
pub const TESTDEV_IOMEM_LEN: u64 = 0x1_0000;

/// The scratch and flush ports.
#[derive(Debug, Default)]
pub struct TestdevPorts {
    scratch: [u8; 4],
}

impl BusDevice for TestdevPorts {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = self.scratch.get(offset as usize + i).copied().unwrap_or(0xff);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset < 4 {
            for (i, b) in data.iter().enumerate() {
                if let Some(s) = self.scratch.get_mut(offset as usize + i) {
                    *s = *b;
                }
            }
        }
    }
}

/// The interrupt lines: one port each.
#[derive(Debug)]
pub struct TestdevIrqs {
    lines: Vec<IrqEvent>,
}

impl TestdevIrqs {
    /// [`TESTDEV_IRQ_LINES`] lines, each an eventfd for the VMM to wire.
    pub fn new() -> std::io::Result<Self> {
        Ok(TestdevIrqs { lines: (0..TESTDEV_IRQ_LINES).map(|_| IrqEvent::new()).collect::<Result<_, _>>()? })
    }

    /// The lines, in order (line `i` is the irqfd for GSI `i`).
    pub fn lines(&self) -> &[IrqEvent] {
        &self.lines
    }
}

impl BusDevice for TestdevIrqs {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        put_le_value(data, 0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let raise = data.iter().any(|&b| b != 0);
        if let (true, Some(line)) = (raise, self.lines.get(offset as usize)) {
            if let Err(e) = vm_superio::Trigger::trigger(line) {
                log::warn!("pc-testdev: cannot raise line {offset}: {e}");
            }
        }
    }
}

/// Memory that exits on every access.
#[derive(Debug)]
pub struct TestdevIomem {
    bytes: Vec<u8>,
}

impl Default for TestdevIomem {
    fn default() -> Self {
        TestdevIomem { bytes: vec![0; TESTDEV_IOMEM_LEN as usize] }
    }
}

impl BusDevice for TestdevIomem {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = self.bytes.get(offset as usize + i).copied().unwrap_or(0xff);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            if let Some(s) = self.bytes.get_mut(offset as usize + i) {
                *s = *b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_reads_back() {
        let mut p = TestdevPorts::default();
        p.write(0, &[1, 2, 3, 4]);
        let mut d = [0u8; 2];
        p.read(0, &mut d);
        assert_eq!(d, [1, 2]);
        p.write(0, &[9]);
        let mut d = [0u8; 4];
        p.read(0, &mut d);
        assert_eq!(d, [9, 2, 3, 4]);
        // The flush port is accepted and does not touch the scratch.
        p.write(4, &[0xaa; 4]);
        p.read(0, &mut d);
        assert_eq!(d, [9, 2, 3, 4]);
    }

    #[test]
    fn a_nonzero_write_pulses_the_line() {
        let mut irqs = TestdevIrqs::new().unwrap();
        irqs.write(11, &[0, 0, 0, 0]);
        assert!(irqs.lines()[11].eventfd().read().is_err(), "a zero write must not raise");
        irqs.write(11, &[1, 0, 0, 0]);
        assert_eq!(irqs.lines()[11].eventfd().read().unwrap(), 1);
        assert!(irqs.lines()[10].eventfd().read().is_err());
        // Beyond the last line: ignored.
        irqs.write(99, &[1]);
    }

    #[test]
    fn iomem_is_memory() {
        let mut m = TestdevIomem::default();
        m.write(0xfffe, &[5, 6]);
        let mut d = [0u8; 4];
        m.read(0xfffe, &mut d);
        assert_eq!(d, [5, 6, 0xff, 0xff]);
    }
}
