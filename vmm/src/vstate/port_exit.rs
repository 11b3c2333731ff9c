//! A `KVM_RUN` exit as the run loop sees it: port I/O with the width of
//! one access kept, anything else as `kvm-ioctls` decodes it.
//!
//! KVM batches a string instruction (`rep insb`, `outsw`, …) into one
//! `KVM_EXIT_IO` with `size` (the width of one access) and `count` (how
//! many); the data area holds `size * count` bytes. `kvm-ioctls` hands out
//! only the data, so the width would be lost and `rep insb` of four bytes
//! would look like one 32-bit `in`. [`PortExit`] keeps it, and
//! [`PortExit::elements`] splits the data into the separate accesses the
//! CPU made.
//!
//! This module does not dispatch anything (that is `run::vm_exit`) and
//! does not read `kvm_run` (that is `vstate::vcpu`).

use kvm_ioctls::VcpuExit;

/// One `KVM_RUN` exit.
#[derive(Debug)]
pub enum Exit<'a> {
    /// Port I/O (`KVM_EXIT_IO`), one or more accesses of the same width.
    Port(PortExit<'a>),
    /// Any other exit.
    Other(VcpuExit<'a>),
}

/// The data of a port exit, by direction.
#[derive(Debug)]
pub enum PortData<'a> {
    /// `in`/`ins`: the VMM fills the bytes.
    In(&'a mut [u8]),
    /// `out`/`outs`: the bytes the guest wrote.
    Out(&'a [u8]),
}

/// A port exit: `data` holds `data.len() / size` accesses of `size` bytes
/// each, in the order the CPU made them.
#[derive(Debug)]
pub struct PortExit<'a> {
    port: u16,
    size: usize,
    data: PortData<'a>,
}

impl<'a> PortExit<'a> {
    /// A port exit of accesses `size` bytes wide. A width that is not 1, 2
    /// or 4, or that does not divide the data, cannot come from KVM; such
    /// an exit is taken as one access of the whole data, so nothing is
    /// lost and nothing panics. The width is never 0.
    pub fn new(port: u16, size: usize, data: PortData<'a>) -> Self {
        let len = match &data {
            PortData::In(d) => d.len(),
            PortData::Out(d) => d.len(),
        };
        let size = if matches!(size, 1 | 2 | 4) && len % size == 0 { size } else { len.max(1) };
        PortExit { port, size, data }
    }

    /// A single `in` of `data.len()` bytes (or a string `in` of `size`).
    pub fn input(port: u16, size: usize, data: &'a mut [u8]) -> Self {
        Self::new(port, size, PortData::In(data))
    }

    /// A single `out` of `data.len()` bytes (or a string `out` of `size`).
    pub fn output(port: u16, size: usize, data: &'a [u8]) -> Self {
        Self::new(port, size, PortData::Out(data))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The width of one access in bytes (at least 1).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The direction and the data of every access; split it into
    /// accesses with `chunks(size())` / `chunks_mut(size())`.
    pub fn into_data(self) -> PortData<'a> {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_width_kvm_gave_is_kept() {
        let mut d = [0u8; 8];
        let p = PortExit::input(0x511, 1, &mut d);
        assert_eq!((p.port(), p.size()), (0x511, 1));
        assert_eq!(PortExit::output(0x80, 2, &[0; 8]).size(), 2);
        assert_eq!(PortExit::output(0x80, 4, &[0; 4]).size(), 4);
    }

    #[test]
    fn an_impossible_width_is_one_access_of_everything() {
        // Not 1, 2 or 4; not a divisor; zero: never from KVM, never a panic.
        assert_eq!(PortExit::output(0x80, 3, &[0; 6]).size(), 6);
        assert_eq!(PortExit::output(0x80, 4, &[0; 6]).size(), 6);
        assert_eq!(PortExit::output(0x80, 0, &[0; 2]).size(), 2);
        assert_eq!(PortExit::output(0x80, 1, &[]).size(), 1);
        assert_eq!(PortExit::output(0x80, 0, &[]).size(), 1);
    }
}
