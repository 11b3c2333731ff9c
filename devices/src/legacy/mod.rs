//! Legacy PC devices on the port-I/O bus: the 16550 serial port and the
//! `isa-debug-exit` style exit port.

mod exit_port;
mod serial;
mod serial_handler;

pub use exit_port::{ExitLatch, ExitPort, EXIT_PORT, EXIT_PORT_LEN};
pub use serial::{IrqEvent, SerialDevice, COM1_PORT, SERIAL_PORT_LEN};
pub use serial_handler::SerialInputHandler;
