//! Event-loop subscriber that feeds host input (stdin) to the serial port,
//! with backpressure: input the receive FIFO cannot take is held back,
//! never dropped.
//!
//! It reads at most what the FIFO has room for (one `read` per readiness
//! event). Bytes the UART did not take (a full FIFO, loopback mode) are
//! kept, and while any are kept the input is not polled at all: the
//! handler asks the device for a signal on its room eventfd and resumes
//! when the guest has read from the receive buffer. A guest that reads
//! nothing thus leaves the input unread in its pipe (the writer blocks),
//! at no cost and with no log line. On end of input or a hang-up it
//! unregisters the input. An input that cannot be polled (a regular file,
//! `/dev/null`) is logged and ignored.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use vmm_sys_util::eventfd::EventFd;

use super::serial::SerialDevice;

/// Most bytes taken from the input per event.
const READ_CHUNK: usize = 64;

/// Event data of the input fd.
const INPUT: u32 = 0;
/// Event data of the device's room eventfd.
const ROOM: u32 = 1;

/// Feeds `input` to `serial`.
#[derive(Debug)]
pub struct SerialInputHandler<R> {
    input: R,
    serial: Arc<Mutex<SerialDevice>>,
    room: Option<EventFd>,
    /// Bytes read but not yet taken by the UART.
    pending: Vec<u8>,
    /// The input fd is registered.
    polling: bool,
    /// End of input seen (pending bytes may remain).
    ended: bool,
}

impl<R: Read + AsRawFd> SerialInputHandler<R> {
    /// A handler reading `input` (usually a duplicate of stdin).
    pub fn new(input: R, serial: Arc<Mutex<SerialDevice>>) -> Self {
        let room = match serial.lock().unwrap_or_else(|e| e.into_inner()).room_eventfd().try_clone() {
            Ok(e) => Some(e),
            Err(e) => {
                // Without it the handler cannot resume after a full FIFO;
                // it still never drops input (it stops reading instead).
                log::warn!("serial input: no room eventfd ({e}); input stops at the first full FIFO");
                None
            }
        };
        SerialInputHandler { input, serial, room, pending: Vec::new(), polling: false, ended: false }
    }

    fn serial(&self) -> std::sync::MutexGuard<'_, SerialDevice> {
        self.serial.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn watch_input(&mut self, ops: &mut EventOps, on: bool) {
        if on == self.polling || self.ended {
            return;
        }
        let ev = Events::with_data(&self.input, INPUT, EventSet::IN);
        let r = if on { ops.add(ev) } else { ops.remove(ev) };
        match r {
            Ok(()) => self.polling = on,
            Err(e) if on => {
                log::info!("serial input is not pollable, ignoring it: {e}");
                self.ended = true;
            }
            Err(e) => log::warn!("serial input: cannot unregister: {e}"),
        }
    }

    /// Moves pending bytes into the UART; if some remain, stops polling
    /// the input and asks for a signal when there is room.
    fn push_pending(&mut self, ops: &mut EventOps) {
        if !self.pending.is_empty() {
            let mut s = self.serial.lock().unwrap_or_else(|e| e.into_inner());
            let n = s.enqueue_input(&self.pending);
            self.pending.drain(..n);
            if !self.pending.is_empty() {
                s.want_room();
            }
        }
        let more = self.pending.is_empty();
        self.watch_input(ops, more);
    }

    fn read_input(&mut self, ops: &mut EventOps) {
        let room = self.serial().input_capacity().clamp(1, READ_CHUNK);
        let mut buf = [0u8; READ_CHUNK];
        match self.input.read(&mut buf[..room]) {
            Ok(0) => self.end(ops),
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                self.push_pending(ops);
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock) => {}
            Err(e) => {
                log::warn!("serial input read failed: {e}");
                self.end(ops);
            }
        }
    }

    fn end(&mut self, ops: &mut EventOps) {
        self.watch_input(ops, false);
        self.ended = true;
    }
}

impl<R: Read + AsRawFd> MutEventSubscriber for SerialInputHandler<R> {
    fn init(&mut self, ops: &mut EventOps) {
        if let Some(room) = &self.room {
            if let Err(e) = ops.add(Events::with_data(room, ROOM, EventSet::IN)) {
                log::warn!("serial input: cannot watch the FIFO's room eventfd: {e}");
            }
        }
        self.watch_input(ops, true);
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if events.data() == ROOM {
            if let Some(room) = &self.room {
                let _ = room.read();
            }
            self.push_pending(ops);
            return;
        }
        let set = events.event_set();
        if set.contains(EventSet::IN) {
            self.read_input(ops);
        } else if set.intersects(EventSet::HANG_UP | EventSet::ERROR) {
            self.end(ops);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use event_manager::{EventManager, SubscriberOps};

    use super::*;
    use crate::BusDevice;

    fn read_byte(serial: &Arc<Mutex<SerialDevice>>) -> Option<u8> {
        let mut s = serial.lock().unwrap();
        let mut d = [0u8];
        s.read(5, &mut d);
        if d[0] & 1 == 0 {
            return None;
        }
        s.read(0, &mut d);
        Some(d[0])
    }

    #[test]
    fn piped_input_reaches_the_uart() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let serial = Arc::new(Mutex::new(SerialDevice::new(Box::new(std::io::sink())).unwrap()));
        let mut em = EventManager::<Box<dyn MutEventSubscriber>>::new().unwrap();
        em.add_subscriber(Box::new(SerialInputHandler::new(reader, serial.clone())));

        writer.write_all(b"hi").unwrap();
        assert_eq!(em.run_with_timeout(1000).unwrap(), 1);
        assert_eq!(read_byte(&serial), Some(b'h'));

        // End of input unregisters the handler; the loop then sees nothing.
        drop(writer);
        assert_eq!(em.run_with_timeout(1000).unwrap(), 1);
        assert_eq!(em.run_with_timeout(10).unwrap(), 0);
    }

    #[test]
    fn a_full_fifo_holds_input_back_and_loses_nothing() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let serial = Arc::new(Mutex::new(SerialDevice::new(Box::new(std::io::sink())).unwrap()));
        let cap = serial.lock().unwrap().input_capacity();
        let mut em = EventManager::<Box<dyn MutEventSubscriber>>::new().unwrap();
        em.add_subscriber(Box::new(SerialInputHandler::new(reader, serial.clone())));
        let input: Vec<u8> = (0..10 * cap + 7).map(|i| (i * 7 + i / 256) as u8).collect();
        writer.write_all(&input).unwrap();
        drop(writer);

        // Nothing reads: the loop goes quiet with the FIFO full and the
        // rest left in the pipe.
        while em.run_with_timeout(50).unwrap() > 0 {}
        assert_eq!(serial.lock().unwrap().input_capacity(), 0);

        // The guest drains the FIFO a byte at a time; every byte arrives,
        // in order, and the handler resumes on its own.
        let mut got = Vec::new();
        while got.len() < input.len() {
            match read_byte(&serial) {
                Some(b) => got.push(b),
                None => assert!(em.run_with_timeout(1000).unwrap() > 0, "stalled after {} bytes", got.len()),
            }
            // Let the loop refill now and then, as it would concurrently.
            if got.len() % 5 == 0 {
                em.run_with_timeout(0).unwrap();
            }
        }
        assert_eq!(got, input);
    }
}
