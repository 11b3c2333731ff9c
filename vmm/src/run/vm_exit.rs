//! What to do about one `KVM_RUN` exit, decided without KVM.
//!
//! [`handle_exit`] is a free function over the exit and the buses, so it
//! is unit-tested with hand-made exits. Device accesses are completed here;
//! anything that needs the vCPU's registers (an exception report, a
//! hypercall, a shootdown acknowledgement) is returned as an action for the
//! vCPU loop, which checks that it came from the kernel stub.

use std::sync::atomic::{AtomicU64, Ordering};

use devices::{Bus, BusKind};
use kvm_ioctls::VcpuExit;
use serde::Serialize;

use crate::hosted::stub::abi::{EXC_PORT, FLUSH_ACK_PORT, HCALL_PORT};
use crate::vstate::port_exit::{Exit, PortData, PortExit};

/// The two buses a vCPU dispatches to.
#[derive(Debug)]
pub struct Buses {
    /// Port I/O.
    pub pio: Bus,
    /// MMIO.
    pub mmio: Bus,
    /// Writes to the kernel stub's ports become actions (hosted guests);
    /// when false they go to the port bus like any other port (a guest
    /// that is its own kernel).
    pub kernel_ports: bool,
}

impl Default for Buses {
    fn default() -> Self {
        Buses { pio: Bus::new(BusKind::Pio), mmio: Bus::new(BusKind::Mmio), kernel_ports: true }
    }
}

/// Per-vCPU exit counters.
#[derive(Debug, Default)]
pub struct ExitCounters {
    /// Every exit.
    pub total: AtomicU64,
    /// MMIO exits.
    pub mmio: AtomicU64,
    /// Port I/O exits.
    pub pio: AtomicU64,
    /// TLB shootdowns this vCPU's hypercalls and page faults performed
    /// (each one memslot zap and an NMI round; see `tlb`). Not exits:
    /// counted here so that they are reported beside them.
    pub shootdowns: AtomicU64,
}

/// A snapshot of [`ExitCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExitCounts {
    /// Every exit.
    pub total: u64,
    /// MMIO exits.
    pub mmio: u64,
    /// Port I/O exits.
    pub pio: u64,
    /// TLB shootdowns performed (see [`ExitCounters::shootdowns`]).
    pub shootdowns: u64,
}

impl ExitCounters {
    /// The current values.
    pub fn snapshot(&self) -> ExitCounts {
        ExitCounts {
            total: self.total.load(Ordering::Relaxed),
            mmio: self.mmio.load(Ordering::Relaxed),
            pio: self.pio.load(Ordering::Relaxed),
            shootdowns: self.shootdowns.load(Ordering::Relaxed),
        }
    }
}

/// Why a vCPU must stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `KVM_EXIT_SHUTDOWN`: a triple fault.
    TripleFault,
    /// The vCPU executed `hlt` in kernel mode (the stub never does).
    Halted,
    /// KVM could not enter the guest.
    FailEntry {
        /// Hardware reason.
        reason: u64,
    },
    /// KVM reported an internal error (often an instruction it cannot
    /// emulate).
    InternalError,
    /// Any other exit this VMM does not handle.
    Unhandled(String),
}

/// What the vCPU loop does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitAction {
    /// The exit was handled; run again.
    Continue,
    /// The exception stub reported an exception.
    Exception,
    /// A `syscall` reached the hypercall port.
    Hypercall,
    /// The shootdown NMI handler flushed and acknowledged.
    FlushAck,
    /// Stop this vCPU.
    Stop(StopReason),
}

/// Handles one exit: device accesses go to the buses (unclaimed ones read
/// as all-ones; a string port instruction access by access), kernel-port
/// writes become actions, fatal exits stop.
pub fn handle_exit(exit: Exit<'_>, buses: &Buses, counters: &ExitCounters) -> ExitAction {
    counters.total.fetch_add(1, Ordering::Relaxed);
    let exit = match exit {
        Exit::Port(p) => {
            counters.pio.fetch_add(1, Ordering::Relaxed);
            return port_io(p, buses);
        }
        Exit::Other(other) => other,
    };
    match exit {
        VcpuExit::MmioRead(addr, data) => {
            counters.mmio.fetch_add(1, Ordering::Relaxed);
            buses.mmio.read(addr, data);
            ExitAction::Continue
        }
        VcpuExit::MmioWrite(addr, data) => {
            counters.mmio.fetch_add(1, Ordering::Relaxed);
            buses.mmio.write(addr, data);
            ExitAction::Continue
        }
        VcpuExit::Shutdown => ExitAction::Stop(StopReason::TripleFault),
        VcpuExit::Hlt => ExitAction::Stop(StopReason::Halted),
        VcpuExit::FailEntry(reason, _cpu) => ExitAction::Stop(StopReason::FailEntry { reason }),
        VcpuExit::InternalError => ExitAction::Stop(StopReason::InternalError),
        VcpuExit::Intr => ExitAction::Continue,
        other => ExitAction::Stop(StopReason::Unhandled(format!("{other:?}"))),
    }
}

/// A port exit: kernel-port writes become actions, everything else goes
/// to the port bus one access at a time, at the width the CPU used (a
/// string instruction's accesses are separate reads or writes of the same
/// port, as on hardware).
fn port_io(p: PortExit<'_>, buses: &Buses) -> ExitAction {
    let (port, size) = (p.port(), p.size());
    let addr = u64::from(port);
    match p.into_data() {
        PortData::Out(_) if buses.kernel_ports && port == EXC_PORT => ExitAction::Exception,
        PortData::Out(_) if buses.kernel_ports && port == HCALL_PORT => ExitAction::Hypercall,
        PortData::Out(_) if buses.kernel_ports && port == FLUSH_ACK_PORT => ExitAction::FlushAck,
        PortData::Out(data) => {
            for access in data.chunks(size) {
                buses.pio.write(addr, access);
            }
            ExitAction::Continue
        }
        PortData::In(data) => {
            for access in data.chunks_mut(size) {
                buses.pio.read(addr, access);
            }
            ExitAction::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use devices::{BarDevice, BusDevice};

    use super::*;

    /// A one-access `out` (or a string `out` of `data.len()` one-byte
    /// accesses: the same thing for a one-byte write).
    fn out(port: u16, data: &[u8]) -> Exit<'_> {
        Exit::Port(PortExit::output(port, data.len(), data))
    }

    /// A one-access `in` of `data.len()` bytes.
    fn inp(port: u16, data: &mut [u8]) -> Exit<'_> {
        let n = data.len();
        Exit::Port(PortExit::input(port, n, data))
    }

    struct Echo(Vec<(u64, Vec<u8>)>);
    impl BusDevice for Echo {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.0.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn port_io_reaches_devices_with_offsets() {
        let mut buses = Buses::default();
        let echo = Arc::new(Mutex::new(Echo(Vec::new())));
        buses.pio.insert(echo.clone(), 0x3f8, 8).unwrap();
        let c = ExitCounters::default();
        assert_eq!(handle_exit(out(0x3f9, &[7]), &buses, &c), ExitAction::Continue);
        let mut d = [0u8; 1];
        assert_eq!(handle_exit(inp(0x3fd, &mut d), &buses, &c), ExitAction::Continue);
        assert_eq!(d, [5]);
        // Unclaimed port: all-ones, the guest goes on.
        let mut d = [0u8; 2];
        assert_eq!(handle_exit(inp(0x60, &mut d), &buses, &c), ExitAction::Continue);
        assert_eq!(d, [0xff, 0xff]);
        assert_eq!(echo.lock().unwrap().0, vec![(1, vec![7])]);
        assert_eq!(c.snapshot(), ExitCounts { total: 3, mmio: 0, pio: 3, shootdowns: 0 });
    }

    #[test]
    fn mmio_reaches_the_bar() {
        let mut buses = Buses::default();
        let bar = Arc::new(Mutex::new(BarDevice::new(0x1000).unwrap()));
        buses.mmio.insert(bar.clone(), 0xe000_0000, 0x1000).unwrap();
        let c = ExitCounters::default();
        let v = 0x55u64.to_le_bytes();
        handle_exit(Exit::Other(VcpuExit::MmioWrite(0xe000_0008, &v)), &buses, &c);
        let mut d = [0u8; 8];
        handle_exit(Exit::Other(VcpuExit::MmioRead(0xe000_0010, &mut d)), &buses, &c);
        assert_eq!(u64::from_le_bytes(d), devices::bar::registers::check_value(0x55));
        let mut d = [0u8; 4];
        handle_exit(Exit::Other(VcpuExit::MmioRead(0xf000_0000, &mut d)), &buses, &c);
        assert_eq!(d, [0xff; 4]);
        assert_eq!(c.snapshot().mmio, 3);
    }

    #[test]
    fn kernel_ports_and_fatal_exits() {
        let buses = Buses::default();
        let c = ExitCounters::default();
        assert_eq!(handle_exit(out(EXC_PORT, &[14]), &buses, &c), ExitAction::Exception);
        assert_eq!(handle_exit(out(HCALL_PORT, &[1]), &buses, &c), ExitAction::Hypercall);
        assert_eq!(handle_exit(out(FLUSH_ACK_PORT, &[0]), &buses, &c), ExitAction::FlushAck);
        assert_eq!(handle_exit(Exit::Other(VcpuExit::Shutdown), &buses, &c), ExitAction::Stop(StopReason::TripleFault));
        assert_eq!(handle_exit(Exit::Other(VcpuExit::Hlt), &buses, &c), ExitAction::Stop(StopReason::Halted));
        assert!(matches!(
            handle_exit(Exit::Other(VcpuExit::Unknown), &buses, &c),
            ExitAction::Stop(StopReason::Unhandled(_))
        ));
    }

    #[test]
    fn kernel_ports_are_plain_ports_for_a_bare_guest() {
        let rec = Arc::new(Mutex::new(Echo(Vec::new())));
        let mut buses = Buses { kernel_ports: false, ..Buses::default() };
        buses.pio.insert(rec.clone(), u64::from(EXC_PORT), 16).unwrap();
        let c = ExitCounters::default();
        for port in [EXC_PORT, HCALL_PORT, FLUSH_ACK_PORT] {
            assert_eq!(handle_exit(out(port, &[1]), &buses, &c), ExitAction::Continue);
        }
        assert_eq!(rec.lock().unwrap().0.len(), 3);
    }
}

#[cfg(test)]
mod string_io_tests;
