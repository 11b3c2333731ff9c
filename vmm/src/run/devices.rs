//! The devices every machine gets: the serial port, the exit port, and the
//! configured BAR windows (trapped ones on the MMIO bus with their doorbell
//! ioeventfd, passed-through ones as KVM memory slots). A kind adds its own
//! through `GuestKind::add_devices`.

use std::sync::{Arc, Mutex};

use devices::{BarDevice, ExitLatch, ExitPort, SerialDevice};
use vm_memory::GuestAddress;

use super::error::{io, RunError};
use super::vm_exit::Buses;
use crate::config::{BarBacking, BarConfig};
use crate::hosted::hypercall::ConsoleOut;
use crate::memory::HostWindow;
use crate::vstate::vm::Vm;

/// Host windows of passed-through BARs, kept alive for the whole run.
#[derive(Debug, Default)]
pub struct Windows(pub Vec<HostWindow>);

/// The devices of a run.
pub(super) struct Devices {
    pub buses: Buses,
    pub serial: Arc<Mutex<SerialDevice>>,
    pub latch: Arc<ExitLatch>,
    pub bars: Vec<Arc<Mutex<BarDevice>>>,
    pub windows: Windows,
}

/// Serial port, exit port, and the BAR windows (trapped ones on the MMIO
/// bus with their doorbell ioeventfd; passed-through ones as memory slots).
pub(super) fn devices(bar_cfg: &[BarConfig], vm: &mut Vm, console: &ConsoleOut) -> Result<Devices, RunError> {
    let dev_err = |e: devices::BusError| RunError::Device(e.to_string());
    let latch = Arc::new(ExitLatch::new().map_err(io("exit latch"))?);
    let serial = Arc::new(Mutex::new(SerialDevice::new(Box::new(console.clone())).map_err(io("serial"))?));
    let mut buses = Buses::default();
    let com1 = u64::from(devices::legacy::COM1_PORT);
    buses.pio.insert(serial.clone(), com1, devices::legacy::SERIAL_PORT_LEN).map_err(dev_err)?;
    let exit_port = Arc::new(Mutex::new(ExitPort::new(latch.clone())));
    let port = u64::from(devices::legacy::EXIT_PORT);
    buses.pio.insert(exit_port, port, devices::legacy::EXIT_PORT_LEN).map_err(dev_err)?;

    let mut bars = Vec::new();
    let mut windows = Windows::default();
    for b in bar_cfg {
        match &b.backing {
            BarBacking::Trapped => {
                let dev = BarDevice::new(b.size).map_err(|e| RunError::Device(e.to_string()))?;
                vm.register_ioevent(dev.doorbell_eventfd(), GuestAddress(b.base + BarDevice::doorbell_offset()))?;
                let dev = Arc::new(Mutex::new(dev));
                buses.mmio.insert(dev.clone(), b.base, b.size).map_err(dev_err)?;
                bars.push(dev);
            }
            BarBacking::File(p) => windows.0.push(HostWindow::from_path(GuestAddress(b.base), b.size, p)?),
            BarBacking::Anonymous => windows.0.push(HostWindow::anonymous(GuestAddress(b.base), b.size)?),
        }
    }
    for w in &windows.0 {
        vm.register_window(w)?;
    }
    Ok(Devices { buses, serial, latch, bars, windows })
}
