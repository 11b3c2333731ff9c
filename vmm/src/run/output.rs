//! The VMM's outputs (guest console, report, log) as bounded buffers that
//! a writer thread drains, so that no vCPU, the event loop or the watchdog
//! ever blocks on a pipe nobody reads.
//!
//! An [`Output`] holds at most [`BUFFER`] bytes waiting for its sink (a
//! little more while vCPUs finish the write they are in; past
//! [`HARD_LIMIT`] bytes are dropped and counted). Writers never wait:
//!
//! - guest console output ([`Output::write`]) is appended whole; a vCPU
//!   that wrote it then calls [`Output::throttle`] outside any lock, which
//!   waits while the buffer is over [`BUFFER`]: the guest runs at the pace
//!   of its reader (backpressure, nothing lost) but stops as soon as the
//!   run must stop;
//! - log lines ([`Output::write_lossy`]) are dropped while the buffer is
//!   full, and counted.
//!
//! The first write error closes the output: what is buffered is dropped,
//! later writes are discarded, [`Output::flush`] returns the error, and a
//! hook set with [`Output::on_broken_pipe`] runs if the reader went away.
//! [`Output::flush`] waits for the buffer to drain, up to a deadline.
//!
//! What it does not do: change the file status flags of stdout/stderr
//! (they are shared with other processes; the writer thread blocks on
//! them instead), or interpret what it writes.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use thiserror::Error;

/// Bytes an output buffers before writers are throttled (console) or
/// dropped (log lines).
pub const BUFFER: usize = 256 << 10;
/// Bytes past which even console output is dropped (reached only if many
/// vCPUs each add a maximal write at once).
pub const HARD_LIMIT: usize = BUFFER + (4 << 20);
/// How long output may stay unread after a run with a watchdog
/// (`--timeout`) ends before the VMM gives up on it and exits.
pub const GRACE: Duration = Duration::from_secs(2);
/// What a run with a watchdog keeps of [`GRACE`] past its timeout for
/// everything after giving up on output (the report, teardown, exit) and
/// before the run started (loading the guest): unread output is given up
/// by `--timeout` + [`GRACE`] - this after the watchdog was armed, so
/// that the VMM ends by `--timeout` + [`GRACE`] (see [`give_up_at`]).
pub const EXIT_MARGIN: Duration = Duration::from_millis(500);

/// The least a flush waits once the cap of [`Output::give_up_by`] has
/// passed (an output nothing was written to since its last timed-out
/// flush still gives up at once).
const CAPPED_WAIT: Duration = Duration::from_millis(100);

/// When output still unread is given up in a run whose watchdog was armed
/// at `armed` for `timeout`: `None` if that instant cannot be represented.
pub fn give_up_at(armed: Instant, timeout: Duration) -> Option<Instant> {
    armed.checked_add(timeout)?.checked_add(GRACE.saturating_sub(EXIT_MARGIN))
}
/// Most bytes the writer thread hands to the sink at once.
const CHUNK: usize = 64 << 10;
/// How often a throttled vCPU looks whether the run is stopping.
const THROTTLE_POLL: Duration = Duration::from_millis(10);

/// Why [`Output::flush`] did not finish.
#[derive(Debug, Error)]
pub enum FlushError {
    /// A write failed; the output is closed.
    #[error("{0}")]
    Io(#[source] io::Error),
    /// The reader did not take the output before the deadline.
    #[error("not read for {waited:?}; {pending} bytes not written")]
    TimedOut {
        /// How long the flush waited.
        waited: Duration,
        /// Bytes still buffered.
        pending: usize,
    },
}

type Hook = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct State {
    buf: VecDeque<u8>,
    /// Bytes the writer thread took and has not finished writing.
    in_flight: usize,
    /// The first write error.
    error: Option<(io::ErrorKind, String)>,
    /// Bytes dropped (over the limit, or after an error).
    dropped: u64,
    /// Every handle is gone: the writer drains and exits.
    shutdown: bool,
    /// Bytes written out so far.
    written: u64,
    /// `written` when a flush last timed out: while it has not moved, a
    /// flush with a deadline gives up at once (the reader is stuck).
    stalled_at: Option<u64>,
    /// The latest any flush waits (see [`Output::give_up_by`]).
    give_up: Option<Instant>,
}

struct Shared {
    name: &'static str,
    state: Mutex<State>,
    /// Signalled when data arrives, drains, or the output closes.
    changed: Condvar,
    /// Buffer over [`BUFFER`] (read without the lock on every vCPU exit).
    full: AtomicBool,
    on_broken_pipe: Mutex<Option<Hook>>,
    /// The sink until the writer thread starts (see `Output::start`).
    unstarted: Mutex<Option<Box<dyn Write + Send>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update_full(&self, s: &State) {
        self.full.store(s.buf.len() + s.in_flight > BUFFER && s.error.is_none(), Ordering::Release);
    }
}

/// The handle count, to stop the writer thread when the last one goes.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.lock().shutdown = true;
        self.0.changed.notify_all();
    }
}

/// A bounded, non-blocking output (cheap to clone; clones share it).
#[derive(Clone)]
pub struct Output(Arc<Handle>);

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("name", &self.shared().name).finish_non_exhaustive()
    }
}

impl Output {
    /// A console output draining into `sink` from a thread of its own.
    pub fn new(sink: Box<dyn Write + Send>) -> Self {
        Self::named("console", sink)
    }

    /// An output draining into `sink` from a thread of its own; `name`
    /// ("stdout", "console", ...) appears in messages. If the thread
    /// cannot be started the output is born closed: writes are dropped
    /// and [`Self::flush`] returns that error.
    pub fn named(name: &'static str, sink: Box<dyn Write + Send>) -> Self {
        let shared = Arc::new(Shared {
            name,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            full: AtomicBool::new(false),
            on_broken_pipe: Mutex::new(None),
            unstarted: Mutex::new(Some(sink)),
        });
        Output(Arc::new(Handle(shared)))
    }

    /// Starts the writer thread at the first write: a process that writes
    /// nothing before it allocates guest memory then has no writer thread
    /// (nor its glibc arena, which, mapped next to guest RAM, would merge
    /// with it in `/proc/PID/smaps`, where `vmm bench` finds guest RAM by
    /// its exact size).
    fn start(&self) {
        let arc = &self.0 .0;
        let Some(mut sink) = arc.unstarted.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        let s = arc.clone();
        let name = arc.name;
        let spawned = std::thread::Builder::new().name(format!("out-{name}")).spawn(move || drain(&s, &mut *sink));
        if let Err(e) = spawned {
            let e = io::Error::new(e.kind(), format!("cannot start the {name} writer thread: {e}"));
            fail(arc, e);
        }
    }

    /// Starts the writer thread now if it has not started: a thread that
    /// will run under a seccomp filter (which forbids creating threads)
    /// must never be the one to start it (see `crate::seccomp`).
    pub fn start_writer(&self) {
        self.start();
    }

    /// The process's stdout (a duplicate of fd 1, so Rust's own `Stdout`
    /// lock and buffer are never involved).
    pub fn stdout() -> io::Result<Self> {
        Ok(Self::named("stdout", Box::new(File::from(io::stdout().as_fd().try_clone_to_owned()?))))
    }

    /// The process's stderr (a duplicate of fd 2).
    pub fn stderr() -> io::Result<Self> {
        Ok(Self::named("stderr", Box::new(File::from(io::stderr().as_fd().try_clone_to_owned()?))))
    }

    fn shared(&self) -> &Shared {
        &self.0 .0
    }

    fn append(&self, bytes: &[u8], limit: usize) {
        let sh = self.shared();
        let mut s = sh.lock();
        if s.error.is_some() || s.buf.len() + s.in_flight + bytes.len() > limit {
            s.dropped += bytes.len() as u64;
            return;
        }
        s.buf.extend(bytes);
        sh.update_full(&s);
        drop(s);
        self.start();
        sh.changed.notify_all();
    }

    /// Appends `bytes` (console output). Never waits: call
    /// [`Self::throttle`] afterwards, outside any lock.
    pub fn write(&self, bytes: &[u8]) {
        self.append(bytes, HARD_LIMIT);
    }

    /// Appends `bytes` unless the buffer is full (log lines): never waits,
    /// and a full buffer drops the line.
    pub fn write_lossy(&self, bytes: &[u8]) {
        self.append(bytes, BUFFER);
    }

    /// Waits while more than [`BUFFER`] bytes are waiting, unless
    /// `stopping()` says the run is ending. Returns at once (one atomic
    /// load) when the buffer is not full.
    pub fn throttle(&self, stopping: &dyn Fn() -> bool) {
        let sh = self.shared();
        if !sh.full.load(Ordering::Acquire) {
            return;
        }
        let mut s = sh.lock();
        while sh.full.load(Ordering::Acquire) && !stopping() {
            s = sh.changed.wait_timeout(s, THROTTLE_POLL).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Caps every later [`Self::flush`] of this output (and its clones)
    /// at `at` (or a moment after the flush starts, if that is later),
    /// whatever deadline it is given: the run's watchdog sets it
    /// (from [`give_up_at`]) so that no flush keeps the VMM past
    /// `--timeout` + [`GRACE`]. A later call moves the cap.
    pub fn give_up_by(&self, at: Instant) {
        self.shared().lock().give_up = Some(at);
    }

    /// Waits until everything written so far is written out, or
    /// `deadline` (never, if `None`), or the cap set by
    /// [`Self::give_up_by`], whichever comes first.
    pub fn flush(&self, deadline: Option<Instant>) -> Result<(), FlushError> {
        let sh = self.shared();
        let start = Instant::now();
        let mut s = sh.lock();
        // The cap still leaves each flush a moment: a report on a stdout
        // that is read must get out after an unread console used the time.
        let cap = s.give_up.map(|g| g.max(start + CAPPED_WAIT));
        let deadline = match (deadline, cap) {
            (Some(d), Some(g)) => Some(d.min(g)),
            (d, g) => d.or(g),
        };
        loop {
            if let Some((kind, msg)) = &s.error {
                return Err(FlushError::Io(io::Error::new(*kind, msg.clone())));
            }
            if s.buf.is_empty() && s.in_flight == 0 {
                return Ok(());
            }
            let stuck = s.stalled_at == Some(s.written);
            let wait = match deadline {
                None => Duration::from_secs(3600),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(w) if !w.is_zero() && !stuck => w,
                    _ => {
                        s.stalled_at = Some(s.written);
                        return Err(FlushError::TimedOut {
                            waited: start.elapsed(),
                            pending: s.buf.len() + s.in_flight,
                        });
                    }
                },
            };
            s = sh.changed.wait_timeout(s, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// The first write error, if any.
    pub fn error(&self) -> Option<io::Error> {
        self.shared().lock().error.as_ref().map(|(k, m)| io::Error::new(*k, m.clone()))
    }

    /// Bytes dropped so far (buffer over its limit, or after an error).
    pub fn dropped(&self) -> u64 {
        self.shared().lock().dropped
    }

    /// Runs `hook` once if the reader goes away (`EPIPE`), at once if it
    /// already has. `None` removes the hook.
    pub fn on_broken_pipe(&self, hook: Option<Hook>) {
        let sh = self.shared();
        // Hold the hook's lock across the check, so an error recorded
        // meanwhile finds the hook stored (see `fail`).
        let mut h = sh.on_broken_pipe.lock().unwrap_or_else(|e| e.into_inner());
        let broken = matches!(sh.lock().error, Some((io::ErrorKind::BrokenPipe, _)));
        match hook {
            Some(f) if broken => f(),
            other => *h = other,
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Output::write(self, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writer thread: takes chunks out of the buffer and writes them,
/// blocking only itself.
fn drain(sh: &Shared, sink: &mut dyn Write) {
    let mut chunk = Vec::with_capacity(CHUNK);
    loop {
        {
            let mut s = sh.lock();
            s.written += s.in_flight as u64;
            s.in_flight = 0;
            sh.update_full(&s);
            sh.changed.notify_all();
            while s.buf.is_empty() && !s.shutdown {
                s = sh.changed.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            if s.buf.is_empty() {
                return;
            }
            let n = s.buf.len().min(CHUNK);
            chunk.clear();
            chunk.extend(s.buf.drain(..n));
            s.in_flight = n;
        }
        // Under seccomp the thread filters itself before it writes what a
        // filtered run produced (see `crate::seccomp`).
        if let Err(e) = crate::seccomp::enter_writer() {
            fail(sh, io::Error::other(e.to_string()));
            return;
        }
        if let Err(e) = sink.write_all(&chunk).and_then(|()| sink.flush()) {
            fail(sh, e);
            return;
        }
    }
}

/// Closes the output after a write error.
fn fail(sh: &Shared, e: io::Error) {
    let broken = e.kind() == io::ErrorKind::BrokenPipe;
    {
        let mut s = sh.lock();
        s.dropped += (s.buf.len() + s.in_flight) as u64;
        s.buf = VecDeque::new();
        s.in_flight = 0;
        s.error = Some((e.kind(), e.to_string()));
        sh.update_full(&s);
    }
    sh.changed.notify_all();
    if broken {
        // The reader went away: quietly, as a writer killed by SIGPIPE.
        if let Some(hook) = sh.on_broken_pipe.lock().unwrap_or_else(|e| e.into_inner()).take() {
            hook();
        }
    } else {
        log::warn!("{} output failed: {e}; further output to it is dropped", sh.name);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A sink that blocks until released, then records.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (m, c) = &*self.open;
            let mut open = m.lock().unwrap();
            while !*open {
                open = c.wait(open).unwrap();
            }
            self.got.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Gate {
        fn release(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }
    }

    struct Failing(io::ErrorKind);
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(self.0))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_blocked_sink_blocks_nobody_but_the_writer_thread() {
        let gate = Gate::default();
        let out = Output::named("test", Box::new(gate.clone()));
        // Far more than the buffer: every call returns at once.
        let t = Instant::now();
        for _ in 0..(2 * BUFFER / 1000) {
            out.write(&[b'a'; 1000]);
            out.write_lossy(b"log\n");
        }
        assert!(t.elapsed() < Duration::from_secs(2));
        // Throttling waits while full, but not once the run stops.
        let stop = AtomicBool::new(false);
        let calls = AtomicUsize::new(0);
        std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                stop.store(true, Ordering::Release);
            });
            out.throttle(&|| {
                calls.fetch_add(1, Ordering::Relaxed);
                stop.load(Ordering::Acquire)
            });
        });
        assert!(calls.load(Ordering::Relaxed) > 1, "throttle did not wait");
        // A flush with a deadline gives up.
        let e = out.flush(Some(Instant::now() + Duration::from_millis(20))).unwrap_err();
        assert!(matches!(e, FlushError::TimedOut { pending, .. } if pending > BUFFER));
        // Nothing moved since: the next one gives up without waiting.
        let t = Instant::now();
        assert!(out.flush(Some(Instant::now() + Duration::from_secs(10))).is_err());
        assert!(t.elapsed() < Duration::from_secs(5));
        // Log lines over the limit were dropped, console bytes were not.
        assert!(out.dropped() > 0);
        gate.release();
        out.flush(None).unwrap();
        let got = gate.got.lock().unwrap();
        assert_eq!(got.iter().filter(|&&b| b == b'a').count(), 2 * BUFFER / 1000 * 1000);
    }

    #[test]
    fn a_cap_bounds_every_later_flush() {
        let gate = Gate::default();
        let out = Output::named("test", Box::new(gate.clone()));
        out.write(b"never read");
        out.clone().give_up_by(Instant::now() + Duration::from_millis(50));
        // A longer deadline and no deadline both end at the cap.
        let t = Instant::now();
        assert!(matches!(out.flush(Some(Instant::now() + Duration::from_secs(30))), Err(FlushError::TimedOut { .. })));
        assert!(matches!(out.flush(None), Err(FlushError::TimedOut { .. })));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        gate.release();
        // Past the cap, output whose reader takes it soon still gets out.
        let slow = Gate::default();
        let read = Output::named("read", Box::new(slow.clone()));
        read.give_up_by(Instant::now());
        read.write(b"the report");
        std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                slow.release();
            });
            read.flush(Some(Instant::now() + Duration::from_secs(30))).expect("read within the capped wait");
        });
        assert!(give_up_at(Instant::now(), Duration::from_secs(u64::MAX)).is_none());
        let armed = Instant::now();
        assert_eq!(give_up_at(armed, Duration::from_secs(2)), Some(armed + GRACE * 2 - EXIT_MARGIN));
    }

    #[test]
    fn throttle_returns_once_drained() {
        let gate = Gate::default();
        let out = Output::named("test", Box::new(gate.clone()));
        out.write(&vec![0u8; 2 * BUFFER]);
        let g = gate.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            g.release();
        });
        out.throttle(&|| false);
        h.join().unwrap();
    }

    #[test]
    fn errors_close_the_output() {
        let out = Output::named("test", Box::new(Failing(io::ErrorKind::StorageFull)));
        out.write(b"x");
        let e = out.flush(None).unwrap_err();
        assert!(matches!(&e, FlushError::Io(e) if e.kind() == io::ErrorKind::StorageFull), "{e}");
        out.write(b"more");
        assert!(out.error().is_some());
        assert_eq!(out.dropped(), 5);
        // A broken pipe runs the hook, also when set afterwards.
        let out = Output::named("test", Box::new(Failing(io::ErrorKind::BrokenPipe)));
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        out.on_broken_pipe(Some(Box::new(move || {
            h.fetch_add(1, Ordering::Relaxed);
        })));
        out.write(b"x");
        assert!(out.flush(None).is_err());
        // The hook runs on the writer thread after the error is recorded.
        let t = Instant::now();
        while hits.load(Ordering::Relaxed) == 0 && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(hits.load(Ordering::Relaxed), 1);
        let h = hits.clone();
        out.on_broken_pipe(Some(Box::new(move || {
            h.fetch_add(1, Ordering::Relaxed);
        })));
        assert_eq!(hits.load(Ordering::Relaxed), 2);
    }
}
