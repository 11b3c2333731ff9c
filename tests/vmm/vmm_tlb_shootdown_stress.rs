//! Scenario: the TLB-shootdown protocol (`vmm::hosted::tlb`) against a simulated
//! KVM that loses kicks, loses or delays NMIs and merges duplicates, with
//! vCPUs that spin in user mode without exits and vCPUs that block on the
//! caller's lock. No KVM needed.
//!
//! Each simulated vCPU makes the real vCPU loop's calls (`entering`,
//! `nmi_due`, `left`, `acked`) around a "run" that models what matters:
//! KVM's pending-NMI count (at most two, one while an NMI is being
//! handled), NMI blocking until `iretq` (across exits), and the stub's
//! handler, which reads the list's count once, then one pair per step from
//! the scratch page. A caller thread holds an "address-space lock" across
//! each request and wait, as `KvmFlusher` does; vCPUs take it on their
//! hypercalls.
//!
//! Checked:
//! - every wait ends (kicks and NMIs are retried; a vCPU blocked on the
//!   lock does not deadlock the caller);
//! - the pairs a handler part-way through the scratch page has yet to read
//!   never change (a duplicate NMI is harmless);
//! - a generation completes only once a handler invalidated all its pages;
//! - with NMIs that are neither lost nor late (real KVM): once a wait
//!   returned, no vCPU runs a user instruction before it invalidated what
//!   that wait was for.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use vmm::hosted::tlb::{Shootdown, Timing, WaitError, MAX_RANGES};

const VCPUS: u8 = 4;
/// The caller's id: not a vCPU, so every vCPU is asked.
const CALLER: u8 = 0xff;
const PAGE: u64 = 0x1000;
/// Ranges per request, at most (lists of different lengths follow each
/// other in a scratch page).
const SPREAD: u64 = 8;

/// The address of page `id` (request `id / SPREAD`); pages are two apart,
/// so ranges never merge.
fn page_of(id: u64) -> u64 {
    (id + 1) * 2 * PAGE
}

/// The generation that asked for page `id`.
fn gen_of(id: u64) -> u64 {
    id / SPREAD + 1
}

/// Locks `m` (a panicking vCPU thread stops the run anyway).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `p` percent.
    fn chance(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

/// How unreliable the simulated KVM is (percentages).
#[derive(Clone, Copy, Debug)]
struct Faults {
    lost_kick: u64,
    lost_nmi: u64,
    /// Per run: pending NMIs wait for a later entry.
    late_nmi: u64,
    /// User instructions that exit to a hypercall, per thousand, on
    /// vCPUs 2 and up. vCPUs 0 and 1 spin without exits, like the built-in
    /// guest's waiting vCPU: only kicks get them out of the guest.
    hypercalls: u64,
}

impl Faults {
    /// Does every NMI run before the next user instruction, as on KVM?
    fn prompt(&self) -> bool {
        self.lost_nmi == 0 && self.late_nmi == 0
    }
}

/// What every thread shares.
struct World {
    tlb: Shootdown,
    faults: Faults,
    stop: AtomicBool,
    /// Per vCPU: a kick landed.
    kicked: Vec<AtomicBool>,
    /// Per vCPU: the pages it has not invalidated since they were asked for.
    stale: Vec<Mutex<BTreeSet<u64>>>,
    /// Every generation up to this one was waited for.
    released: AtomicU64,
    /// Generations requested so far.
    requested: AtomicU64,
    /// Kicks sent, to decide which ones are lost.
    kicks: AtomicU64,
    /// The address-space lock.
    space: Mutex<()>,
}

/// KVM's and the guest's NMI state of one vCPU.
#[derive(Default)]
struct Guest {
    scratch: Vec<u64>,
    /// Injected since the last entry (KVM's `nmi_queued`).
    queued: u32,
    pending: u32,
    /// NMIs blocked (a handler runs, until its `iretq`).
    blocked: bool,
    /// The running handler: the count it read, and the next pair.
    handler: Option<(u64, u64)>,
    /// It acknowledged; the next run starts with its `iretq`.
    iret_due: bool,
}

/// Why a run ended.
enum Exit {
    Kicked,
    Ack,
    Hypercall,
    Stop,
}

/// One `KVM_RUN`.
fn run(w: &World, me: usize, g: &mut Guest, rng: &mut Rng) -> Exit {
    // KVM's process_nmi on entry: at most two pending, one while blocked.
    g.pending = (g.pending + std::mem::take(&mut g.queued)).min(if g.blocked { 1 } else { 2 });
    if g.iret_due {
        g.iret_due = false;
        g.handler = None;
        g.blocked = false;
    }
    let late = rng.chance(w.faults.late_nmi);
    loop {
        if w.stop.load(Ordering::Relaxed) {
            return Exit::Stop;
        }
        if w.kicked[me].swap(false, Ordering::SeqCst) {
            return Exit::Kicked;
        }
        if !g.blocked && g.pending > 0 && !late {
            g.pending -= 1;
            g.blocked = true;
            g.handler = Some((g.scratch[0], 0));
            continue;
        }
        if g.handler.is_some_and(|(count, _)| count == u64::MAX) {
            // "Everything" (a vCPU that stayed out past MAX_PENDING ranges).
            lock(&w.stale[me]).clear();
            g.handler = Some((0, 0));
            continue;
        }
        if let Some((count, next)) = g.handler {
            assert!(count <= MAX_RANGES as u64, "vCPU {me}: the handler read a count of {count}");
            if next == count {
                return Exit::Ack;
            }
            let (start, pages) = (g.scratch[1 + 2 * next as usize], g.scratch[2 + 2 * next as usize]);
            let mut stale = lock(&w.stale[me]);
            for p in 0..pages {
                stale.remove(&((start + p * PAGE) / (2 * PAGE) - 1));
            }
            drop(stale);
            g.handler = Some((count, next + 1));
            if rng.chance(30) {
                thread::yield_now();
            }
            continue;
        }
        // A user instruction.
        if w.faults.prompt() {
            let released = w.released.load(Ordering::SeqCst);
            if let Some(&id) = lock(&w.stale[me]).first() {
                let gen = gen_of(id);
                assert!(gen > released, "vCPU {me} runs user code with generation {gen} not flushed, after its wait");
            }
        }
        if me >= 2 && rng.next() % 1000 < w.faults.hypercalls {
            return Exit::Hypercall;
        }
        if rng.chance(10) {
            thread::yield_now();
        }
    }
}

/// The highest generation `me` has completed (`wait` on itself is
/// satisfied only by that while it is in the guest), searched above `from`.
fn completed(w: &World, me: u8, from: u64) -> u64 {
    let (mut lo, mut hi) = (from, w.requested.load(Ordering::SeqCst));
    while lo < hi {
        let mid = hi - (hi - lo) / 2;
        if w.tlb.wait(mid, &[me], &|| true, &|_| {}).is_ok() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Ends the run if a vCPU thread panics (the caller would wait for it).
struct StopOnPanic<'a>(&'a World);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.stop.store(true, Ordering::SeqCst);
        }
    }
}

/// The vCPU loop (`vcpu_thread.rs`), on a simulated KVM.
fn vcpu(w: &World, me: u8, seed: u64) {
    let _stop = StopOnPanic(w);
    let i = me as usize;
    let mut rng = Rng(seed);
    let mut g = Guest { scratch: vec![0; 1 + 2 * MAX_RANGES], ..Guest::default() };
    let mut checked = 0;
    loop {
        w.tlb.entering(me);
        let done = completed(w, me, checked);
        if done > checked {
            if let Some(&id) = lock(&w.stale[i]).first() {
                let gen = gen_of(id);
                assert!(gen > done, "vCPU {me}: generation {done} completed, generation {gen} not flushed");
            }
            checked = done;
        }
        if let Some(list) = w.tlb.nmi_due(me) {
            let words: Vec<u64> =
                list.to_bytes().chunks(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
            if let Some((count, next)) = g.handler {
                let unread = 1 + 2 * next as usize..1 + 2 * count as usize;
                let changed = unread.clone().any(|k| words.get(k).is_some_and(|&x| x != g.scratch[k]));
                assert!(!changed, "vCPU {me}: the scratch page changed under a handler at pair {next} of {count}");
            }
            g.scratch[..words.len()].copy_from_slice(&words);
            if !rng.chance(w.faults.lost_nmi) {
                g.queued += 1;
            }
        }
        let exit = run(w, i, &mut g, &mut rng);
        w.tlb.left(me);
        match exit {
            Exit::Stop => break,
            Exit::Kicked => {}
            Exit::Ack => {
                g.iret_due = true;
                w.tlb.acked(me);
            }
            Exit::Hypercall => drop(lock(&w.space)),
        }
    }
    w.tlb.exited(me);
}

fn scenario(faults: Faults, requests: u64, seed: u64) {
    let timing = Timing {
        ack_timeout: Duration::from_secs(20),
        rekick_first: Duration::from_micros(100),
        rekick_max: Duration::from_millis(1),
        redeliver_first: Duration::from_micros(200),
        redeliver_max: Duration::from_millis(2),
        blocked_after: Duration::from_millis(1),
    };
    let w = Arc::new(World {
        tlb: Shootdown::with_timing(VCPUS, timing),
        faults,
        stop: AtomicBool::new(false),
        kicked: (0..VCPUS).map(|_| AtomicBool::new(false)).collect(),
        stale: (0..VCPUS).map(|_| Mutex::new(BTreeSet::new())).collect(),
        released: AtomicU64::new(0),
        requested: AtomicU64::new(0),
        kicks: AtomicU64::new(seed),
        space: Mutex::new(()),
    });
    let threads: Vec<_> = (0..VCPUS)
        .map(|me| {
            let w = w.clone();
            thread::spawn(move || vcpu(&w, me, seed.wrapping_mul(31) + u64::from(me) + 1))
        })
        .collect();
    let mut rng = Rng(seed);
    let kick = |who: &[u8]| {
        for &v in who {
            let n = w.kicks.fetch_add(1, Ordering::Relaxed);
            if !Rng(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).chance(faults.lost_kick) {
                w.kicked[v as usize].store(true, Ordering::SeqCst);
            }
        }
    };
    for k in 0..requests {
        let space = lock(&w.space);
        let ids: Vec<u64> = (k * SPREAD..).take(1 + (rng.next() % SPREAD) as usize).collect();
        for s in &w.stale {
            lock(s).extend(&ids);
        }
        let ranges: Vec<(u64, u64)> = ids.iter().map(|&id| (page_of(id), PAGE)).collect();
        let (gen, asked) = w.tlb.request(CALLER, &ranges);
        assert_eq!(gen, k + 1);
        w.requested.store(gen, Ordering::SeqCst);
        let r = w.tlb.wait(gen, &asked, &|| w.stop.load(Ordering::SeqCst), &kick);
        if r.is_err() {
            w.stop.store(true, Ordering::SeqCst);
        }
        match r {
            Ok(()) => {}
            Err(WaitError::Timeout(stuck)) => panic!("{faults:?}: {stuck}"),
            Err(WaitError::Stopping) => panic!("{faults:?}: a vCPU thread failed"),
        }
        w.released.store(gen, Ordering::SeqCst);
        if rng.chance(30) {
            drop(space);
            thread::sleep(Duration::from_micros(rng.next() % 300));
        }
    }
    w.stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("vCPU thread");
    }
}

#[test]
fn kicks_lost_nmis_prompt() {
    scenario(Faults { lost_kick: 50, lost_nmi: 0, late_nmi: 0, hypercalls: 20 }, 1000, 1);
}

#[test]
fn kicks_lost_nmis_late() {
    scenario(Faults { lost_kick: 50, lost_nmi: 0, late_nmi: 50, hypercalls: 2 }, 500, 2);
}

#[test]
fn kicks_and_nmis_lost_or_late() {
    scenario(Faults { lost_kick: 50, lost_nmi: 30, late_nmi: 30, hypercalls: 5 }, 500, 3);
}
