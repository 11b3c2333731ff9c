//! Legacy PC devices on the port-I/O bus: the 16550 serial port and the
//! `isa-debug-exit` style exit port, and a read-only `fw_cfg` for
//! firmware-less test kernels, the parts of QEMU's `pc-testdev` test
//! kernels use, the CMOS RTC and the ACPI power-management registers.

mod acpi_pm;
mod exit_port;
mod fw_cfg;
mod pc_testdev;
mod rtc;
mod serial;
mod serial_handler;

pub use acpi_pm::{AcpiPm, SleepLatch, PM1_CNT, PM1_EVT, PM_BASE, PM_LEN, PM_TMR};
pub use exit_port::{ExitLatch, ExitPort, EXIT_PORT, EXIT_PORT_LEN};
pub use fw_cfg::{key as fw_cfg_key, FwCfg, FwCfgInfo, FW_CFG_PORT, FW_CFG_PORT_LEN};
pub use pc_testdev::{
    TestdevIomem, TestdevIrqs, TestdevPorts, TESTDEV_IOMEM, TESTDEV_IOMEM_LEN, TESTDEV_IRQ_LINES, TESTDEV_IRQ_PORT,
    TESTDEV_PORT, TESTDEV_PORT_LEN,
};
pub use rtc::{Rtc, RTC_PORT, RTC_PORT_LEN};
pub use serial::{IrqEvent, SerialDevice, COM1_PORT, SERIAL_PORT_LEN};
pub use serial_handler::SerialInputHandler;
