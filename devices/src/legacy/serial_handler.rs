//! Event-loop subscriber that feeds host input (stdin) to the serial port.
//!
//! It reads whatever is available (one `read` per readiness event, never
//! more than the receive FIFO can take) and queues it in the UART. On end
//! of input or a hang-up it unregisters itself. An input that cannot be
//! polled (a regular file, `/dev/null`) is logged and ignored.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};

use super::serial::SerialDevice;

/// Most bytes taken from the input per event.
const READ_CHUNK: usize = 64;

/// Feeds `input` to `serial`.
#[derive(Debug)]
pub struct SerialInputHandler<R> {
    input: R,
    serial: Arc<Mutex<SerialDevice>>,
}

impl<R: Read + AsRawFd> SerialInputHandler<R> {
    /// A handler reading `input` (usually a duplicate of stdin).
    pub fn new(input: R, serial: Arc<Mutex<SerialDevice>>) -> Self {
        SerialInputHandler { input, serial }
    }

    fn stop(&self, ops: &mut EventOps) {
        if let Err(e) = ops.remove(Events::empty(&self.input)) {
            log::warn!("serial input: cannot unregister: {e}");
        }
    }
}

impl<R: Read + AsRawFd> MutEventSubscriber for SerialInputHandler<R> {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.input, EventSet::IN)) {
            log::info!("serial input is not pollable, ignoring it: {e}");
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let set = events.event_set();
        if set.contains(EventSet::IN) {
            let mut serial = self.serial.lock().unwrap_or_else(|e| e.into_inner());
            let room = serial.input_capacity().clamp(1, READ_CHUNK);
            let mut buf = [0u8; READ_CHUNK];
            match self.input.read(&mut buf[..room]) {
                Ok(0) => {
                    drop(serial);
                    self.stop(ops);
                }
                Ok(n) => {
                    serial.enqueue_input(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("serial input read failed: {e}");
                    drop(serial);
                    self.stop(ops);
                }
            }
        } else if set.intersects(EventSet::HANG_UP | EventSet::ERROR) {
            self.stop(ops);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use event_manager::{EventManager, SubscriberOps};

    use super::*;

    #[test]
    fn piped_input_reaches_the_uart() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let serial = Arc::new(Mutex::new(SerialDevice::new(Box::new(std::io::sink())).unwrap()));
        let mut em = EventManager::<Box<dyn MutEventSubscriber>>::new().unwrap();
        em.add_subscriber(Box::new(SerialInputHandler::new(reader, serial.clone())));

        writer.write_all(b"hi").unwrap();
        assert_eq!(em.run_with_timeout(1000).unwrap(), 1);
        let cap = serial.lock().unwrap().input_capacity();
        let mut s = serial.lock().unwrap();
        let mut d = [0u8];
        crate::BusDevice::read(&mut *s, 0, &mut d);
        assert_eq!(d[0], b'h');
        drop(s);
        assert!(cap > 0);

        // End of input unregisters the handler; the loop then sees nothing.
        drop(writer);
        assert_eq!(em.run_with_timeout(1000).unwrap(), 1);
        assert_eq!(em.run_with_timeout(10).unwrap(), 0);
    }
}
