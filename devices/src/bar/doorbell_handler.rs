//! Event-loop subscriber for a BAR doorbell: when KVM signals the
//! ioeventfd (the guest wrote the doorbell register without an exit to
//! the VMM), the ring is counted in the device.

use std::sync::{Arc, Mutex};

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use vmm_sys_util::eventfd::EventFd;

use super::device::BarDevice;

/// Counts doorbell rings of one BAR device.
#[derive(Debug)]
pub struct DoorbellHandler {
    evt: EventFd,
    dev: Arc<Mutex<BarDevice>>,
}

impl DoorbellHandler {
    /// A handler for `dev`'s doorbell.
    pub fn new(dev: Arc<Mutex<BarDevice>>) -> std::io::Result<Self> {
        let evt = dev.lock().unwrap_or_else(|e| e.into_inner()).doorbell_eventfd().try_clone()?;
        Ok(DoorbellHandler { evt, dev })
    }
}

impl MutEventSubscriber for DoorbellHandler {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.evt, EventSet::IN)) {
            log::error!("cannot watch the BAR doorbell: {e}");
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        if events.event_set().contains(EventSet::IN) {
            let mut dev = self.dev.lock().unwrap_or_else(|e| e.into_inner());
            dev.drain_doorbell();
            log::debug!("BAR doorbell: {} rings so far", dev.doorbell_count());
        }
    }
}

#[cfg(test)]
mod tests {
    use event_manager::{EventManager, SubscriberOps};

    use super::*;
    use crate::bar::registers::DOORBELL_COUNT;
    use crate::bus::BusDevice;

    #[test]
    fn rings_are_counted_by_the_loop() {
        let dev = Arc::new(Mutex::new(BarDevice::new(0x1000).unwrap()));
        let mut em = EventManager::<Box<dyn MutEventSubscriber>>::new().unwrap();
        em.add_subscriber(Box::new(DoorbellHandler::new(dev.clone()).unwrap()));
        dev.lock().unwrap().doorbell_eventfd().write(5).unwrap();
        assert_eq!(em.run_with_timeout(1000).unwrap(), 1);
        let mut d = [0u8; 8];
        dev.lock().unwrap().read(DOORBELL_COUNT, &mut d);
        assert_eq!(u64::from_le_bytes(d), 5);
        // Nothing left pending.
        assert_eq!(em.run_with_timeout(10).unwrap(), 0);
    }
}
