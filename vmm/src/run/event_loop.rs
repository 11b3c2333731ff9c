//! The VMM's event loop (`event-manager`), run on the main thread while
//! vCPUs run in theirs. One subscriber per event source:
//!
//! - [`VcpuExitHandler`]: the eventfds vCPU threads signal when they end
//!   (told apart with `Events::with_data`);
//! - [`Watchdog`]: a timerfd that stops a guest that runs too long;
//! - [`GuestExitHandler`]: the exit port's latch;
//! - from `devices`: serial input (stdin) and BAR doorbells (ioeventfds).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use devices::ExitLatch;
use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

use crate::run::control::{Outcome, RunControl};

/// Counts vCPU threads that have ended.
#[derive(Debug)]
pub struct VcpuExitHandler {
    evts: Vec<EventFd>,
    finished: Arc<AtomicUsize>,
}

impl VcpuExitHandler {
    /// Watches one eventfd per vCPU (index = position).
    pub fn new(evts: Vec<EventFd>, finished: Arc<AtomicUsize>) -> Self {
        VcpuExitHandler { evts, finished }
    }
}

impl MutEventSubscriber for VcpuExitHandler {
    fn init(&mut self, ops: &mut EventOps) {
        for (i, e) in self.evts.iter().enumerate() {
            if let Err(err) = ops.add(Events::with_data(e, i as u32, EventSet::IN)) {
                log::error!("cannot watch vCPU {i}'s exit: {err}");
            }
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let i = events.data() as usize;
        let Some(e) = self.evts.get(i) else { return };
        let _ = e.read();
        log::debug!("vCPU {i} thread ended");
        self.finished.fetch_add(1, Ordering::AcqRel);
        if let Err(err) = ops.remove(Events::with_data(e, i as u32, EventSet::IN)) {
            log::warn!("cannot unwatch vCPU {i}: {err}");
        }
    }
}

/// Stops the run when the timer expires.
#[derive(Debug)]
pub struct Watchdog {
    timer: TimerFd,
    secs: u64,
    ctl: Arc<RunControl>,
}

impl Watchdog {
    /// A watchdog armed for `secs` seconds.
    pub fn new(secs: u64, ctl: Arc<RunControl>) -> std::io::Result<Self> {
        let mut timer = TimerFd::new().map_err(std::io::Error::from)?;
        timer.reset(Duration::from_secs(secs), None).map_err(std::io::Error::from)?;
        Ok(Watchdog { timer, secs, ctl })
    }
}

impl MutEventSubscriber for Watchdog {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.timer, EventSet::IN)) {
            log::error!("cannot arm the watchdog: {e}");
        }
    }

    fn process(&mut self, _events: Events, ops: &mut EventOps) {
        let _ = self.timer.wait();
        log::warn!("watchdog expired after {} s", self.secs);
        self.ctl.stop(Outcome::Timeout { secs: self.secs });
        let _ = ops.remove(Events::new(&self.timer, EventSet::IN));
    }
}

/// Stops every vCPU once the guest wrote the exit port.
#[derive(Debug)]
pub struct GuestExitHandler {
    latch: Arc<ExitLatch>,
    ctl: Arc<RunControl>,
}

impl GuestExitHandler {
    /// Watches `latch`.
    pub fn new(latch: Arc<ExitLatch>, ctl: Arc<RunControl>) -> Self {
        GuestExitHandler { latch, ctl }
    }
}

impl MutEventSubscriber for GuestExitHandler {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(self.latch.eventfd(), EventSet::IN)) {
            log::error!("cannot watch the exit port: {e}");
        }
    }

    fn process(&mut self, _events: Events, ops: &mut EventOps) {
        let _ = self.latch.eventfd().read();
        if let Some(status) = self.latch.status() {
            self.ctl.stop(Outcome::ExitPort { status });
        }
        let _ = ops.remove(Events::new(self.latch.eventfd(), EventSet::IN));
    }
}

#[cfg(test)]
mod tests {
    use event_manager::{EventManager, SubscriberOps};

    use super::*;

    #[test]
    fn watchdog_stops_the_run() {
        let ctl = Arc::new(RunControl::new());
        let mut em = EventManager::<Box<dyn MutEventSubscriber>>::new().unwrap();
        let mut w = Watchdog::new(1, ctl.clone()).unwrap();
        // Fire sooner than a second for the test.
        w.timer.reset(Duration::from_millis(10), None).unwrap();
        em.add_subscriber(Box::new(w));
        assert_eq!(em.run_with_timeout(2000).unwrap(), 1);
        assert_eq!(ctl.outcome(), Some(Outcome::Timeout { secs: 1 }));
    }

    #[test]
    fn vcpu_exits_are_counted_per_fd() {
        let finished = Arc::new(AtomicUsize::new(0));
        let evts: Vec<EventFd> = (0..2).map(|_| EventFd::new(0).unwrap()).collect();
        let e1 = evts[1].try_clone().unwrap();
        let mut em = EventManager::<Box<dyn MutEventSubscriber>>::new().unwrap();
        em.add_subscriber(Box::new(VcpuExitHandler::new(evts, finished.clone())));
        e1.write(1).unwrap();
        em.run_with_timeout(1000).unwrap();
        assert_eq!(finished.load(Ordering::Acquire), 1);
        assert_eq!(em.run_with_timeout(10).unwrap(), 0);
    }

    #[test]
    fn exit_port_latch_stops_the_run() {
        let ctl = Arc::new(RunControl::new());
        let latch = Arc::new(ExitLatch::new().unwrap());
        let mut em = EventManager::<Box<dyn MutEventSubscriber>>::new().unwrap();
        em.add_subscriber(Box::new(GuestExitHandler::new(latch.clone(), ctl.clone())));
        latch.set(5);
        em.run_with_timeout(1000).unwrap();
        assert_eq!(ctl.outcome(), Some(Outcome::ExitPort { status: 5 }));
    }
}
