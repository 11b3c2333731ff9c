//! Unit tests of the shootdown protocol.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

const R: &[Range] = &[(0x1000, 0x2000)];
const HOUR: Duration = Duration::from_secs(3600);

/// Re-injection and the outside rule's delay never fire.
fn patient() -> Timing {
    Timing { redeliver_first: HOUR, redeliver_max: HOUR, blocked_after: HOUR, ..Timing::default() }
}

/// Re-injection is due at every entry.
fn eager() -> Timing {
    Timing { redeliver_first: Duration::ZERO, redeliver_max: Duration::ZERO, ..patient() }
}

fn no_kick(_: &[u8]) {}

#[test]
fn single_vcpu_needs_nobody_but_itself() {
    let s = Shootdown::with_timing(1, patient());
    s.entering(0);
    let (gen, asked) = s.request(0, R);
    assert!(asked.is_empty());
    assert_eq!(s.wait(gen, &asked, &|| false, &no_kick), Ok(()));
    assert_eq!(s.nmi_due(0), Some(FlushList::new(R)));
    s.acked(0);
    assert_eq!(s.nmi_due(0), None);
}

#[test]
fn nmi_protocol() {
    let s = Arc::new(Shootdown::with_timing(2, patient()));
    s.entering(1);
    let (gen, asked) = s.request(0, R);
    assert_eq!(s.in_guest(&asked), vec![1]);
    assert_eq!(asked, vec![1]);
    assert_eq!(s.nmi_due(1), Some(FlushList::new(R)));
    // No second NMI while one is in flight, even for a newer request.
    let (gen2, _) = s.request(0, &[(0x9000, 0x1000)]);
    assert_eq!(s.nmi_due(1), None);
    let t = {
        let s = s.clone();
        std::thread::spawn(move || s.wait(gen, &[1], &|| false, &no_kick))
    };
    s.acked(1);
    assert_eq!(t.join().unwrap(), Ok(()));
    // The newer request still needs its own flush, of its own range.
    assert_eq!(s.nmi_due(1), Some(FlushList::new(&[(0x9000, 0x1000)])));
    s.acked(1);
    assert_eq!(s.wait(gen2, &[1], &|| false, &no_kick), Ok(()));
}

#[test]
fn exits_wake_the_condvar_only_when_a_caller_waits() {
    let s = Arc::new(Shootdown::with_timing(2, patient()));
    // Every exit of every vCPU calls `left`: with nobody in `wait`, no
    // notification (each would be a futex system call).
    for _ in 0..100 {
        s.entering(0);
        s.left(0);
    }
    assert_eq!(s.notifications(), 0);
    // A caller waiting for vCPU 1 is woken by its acknowledgement, not by
    // a timeout (the patient timing waits an hour per slice).
    s.entering(1);
    let (gen, asked) = s.request(0, R);
    assert_eq!(asked, vec![1]);
    assert_eq!(s.nmi_due(1), Some(FlushList::new(R)));
    let t = {
        let s = s.clone();
        std::thread::spawn(move || s.wait(gen, &[1], &|| false, &no_kick))
    };
    // Let the caller reach its wait (if it has not, it sees the
    // acknowledgement when it looks first: the test passes either way).
    std::thread::sleep(Duration::from_millis(50));
    s.acked(1);
    assert_eq!(t.join().unwrap(), Ok(()));
    let sent = s.notifications();
    // Once the caller is gone, exits are silent again.
    for _ in 0..100 {
        s.entering(1);
        s.left(1);
    }
    assert_eq!(s.notifications(), sent);
}

#[test]
fn long_lists_take_several_nmis() {
    let s = Shootdown::with_timing(1, patient());
    let many: Vec<Range> = (0..300u64).map(|i| (i * 0x10000, 0x1000)).collect();
    let (gen, _) = s.request(0, &many);
    let first = s.nmi_due(0).unwrap();
    assert_eq!(first.0[0], MAX_RANGES as u64);
    s.acked(0);
    // Not done yet: a second NMI carries the rest.
    let second = s.nmi_due(0).unwrap();
    assert_eq!(second.0[0], 300 - MAX_RANGES as u64);
    s.acked(0);
    assert_eq!(s.nmi_due(0), None);
    assert_eq!(s.wait(gen, &[0], &|| false, &no_kick), Ok(()));
}

#[test]
fn exited_or_outside_vcpus_count_as_done() {
    let s = Shootdown::with_timing(3, patient());
    s.entering(1);
    s.entering(2);
    let (gen, asked) = s.request(0, R);
    s.exited(1);
    s.left(2);
    assert_eq!(s.wait(gen, &asked, &|| false, &no_kick), Ok(()));
    // vCPU 2 still flushes before it runs guest code again.
    s.entering(2);
    assert!(s.nmi_due(2).is_some());
    let (gen, asked) = s.request(0, R);
    assert_eq!(asked, vec![2]);
    assert_eq!(s.wait(gen, &asked, &|| true, &no_kick), Err(WaitError::Stopping));
}

#[test]
fn a_wait_cannot_miss_a_vcpu_about_to_enter() {
    // The vCPU marks itself in the guest, then looks for a due NMI; the
    // caller raises `want`, then looks at `in_guest`. Whatever the
    // interleaving, either the caller waits for it or it sees the NMI.
    let s = Shootdown::with_timing(2, patient());
    let (gen, asked) = s.request(0, R);
    assert_eq!(s.wait(gen, &asked, &|| false, &no_kick), Ok(()), "outside: satisfied");
    s.entering(1);
    assert!(s.nmi_due(1).is_some(), "and it flushes before running");
}

#[test]
fn an_nmi_is_injected_again_with_the_same_list_until_acknowledged() {
    let s = Shootdown::with_timing(2, eager());
    s.entering(1);
    let (gen, _) = s.request(0, R);
    let list = FlushList::new(R);
    assert_eq!(s.nmi_due(1), Some(list.clone()));
    // Lost (or late): the next entries inject it again, the same bytes,
    // even with a newer request pending (a handler may be part-way
    // through the page).
    s.left(1);
    s.entering(1);
    assert_eq!(s.nmi_due(1), Some(list.clone()));
    let (gen2, _) = s.request(0, &[(0x9000, 0x1000)]);
    s.left(1);
    s.entering(1);
    assert_eq!(s.nmi_due(1), Some(list));
    assert_eq!(s.wait(gen, &[1], &|| true, &no_kick), Err(WaitError::Stopping));
    // The first acknowledgement completes the list; the new one is
    // written at that exit, before a duplicate can start.
    s.acked(1);
    assert_eq!(s.wait(gen, &[1], &|| true, &no_kick), Ok(()));
    let list2 = FlushList::new(&[(0x9000, 0x1000)]);
    assert_eq!(s.nmi_due(1), Some(list2.clone()));
    // A duplicate then runs on the new list, whole: its acknowledgement
    // completes it.
    s.acked(1);
    assert_eq!(s.wait(gen2, &[1], &|| true, &no_kick), Ok(()));
    assert_eq!(s.nmi_due(1), None);
    // Further duplicates may still come (two were injected): a new
    // list waits for a safe point, and a probe (count word only)
    // makes one.
    let (gen3, _) = s.request(0, &[(0x20000, 0x1000)]);
    s.left(1);
    s.entering(1);
    assert_eq!(s.nmi_due(1), Some(FlushList::new(&[])));
    s.acked(1);
    assert_eq!(s.wait(gen3, &[1], &|| true, &no_kick), Err(WaitError::Stopping), "a probe completes nothing");
    assert_eq!(s.nmi_due(1), Some(FlushList::new(&[(0x20000, 0x1000)])));
    s.acked(1);
    assert_eq!(s.wait(gen3, &[1], &|| true, &no_kick), Ok(()));
}

#[test]
fn no_new_list_while_a_duplicate_may_run() {
    let s = Shootdown::with_timing(2, Timing { redeliver_first: Duration::from_millis(5), ..patient() });
    s.entering(1);
    s.request(0, R);
    assert!(s.nmi_due(1).is_some());
    std::thread::sleep(Duration::from_millis(6));
    s.left(1);
    s.entering(1);
    assert_eq!(s.nmi_due(1), Some(FlushList::new(R)), "injected again after 5 ms");
    s.acked(1);
    // The duplicate may now be part-way through the page (the vCPU
    // left without an acknowledgement): a new list waits for the next
    // acknowledgement; at most a probe goes in (after 10 ms).
    s.left(1);
    s.entering(1);
    s.request(0, &[(0x9000, 0x1000)]);
    let due = s.nmi_due(1);
    assert!(due.is_none() || due == Some(FlushList::new(&[])), "{due:?}");
    s.acked(1);
    assert_eq!(s.nmi_due(1), Some(FlushList::new(&[(0x9000, 0x1000)])));
}

#[test]
fn the_caller_kicks_again_with_backoff_until_the_vcpu_leaves() {
    let timing = Timing { rekick_first: Duration::from_millis(1), rekick_max: Duration::from_millis(4), ..patient() };
    let s = Arc::new(Shootdown::with_timing(2, timing));
    s.entering(1);
    let (gen, asked) = s.request(0, R);
    let kicks = Arc::new(AtomicU32::new(0));
    let vcpu = {
        let (s, kicks) = (s.clone(), kicks.clone());
        std::thread::spawn(move || {
            // The first kicks are lost.
            while kicks.load(Ordering::SeqCst) < 5 {
                std::thread::sleep(Duration::from_millis(1));
            }
            s.left(1);
            s.entering(1);
            assert!(s.nmi_due(1).is_some());
            s.acked(1);
        })
    };
    let t0 = Instant::now();
    let kick = |who: &[u8]| {
        assert_eq!(who, [1]);
        kicks.fetch_add(1, Ordering::SeqCst);
    };
    assert_eq!(s.wait(gen, &asked, &|| false, &kick), Ok(()));
    vcpu.join().unwrap();
    // Kicks at 0, 1, 3, 7 and 11 ms at the earliest.
    assert!(t0.elapsed() >= Duration::from_millis(11));
}

#[test]
fn a_vcpu_blocked_outside_with_an_nmi_outstanding_releases_the_caller_later() {
    let blocked_after = Duration::from_millis(30);
    let s = Shootdown::with_timing(2, Timing { blocked_after, ..patient() });
    s.entering(1);
    let (gen, _) = s.request(0, R);
    assert!(s.nmi_due(1).is_some());
    // It left without acknowledging (a kick, or a hypercall that now
    // waits for the lock the caller holds): bounced out by a kick, it
    // is waited for...
    s.left(1);
    assert_eq!(s.wait(gen, &[1], &|| true, &no_kick), Err(WaitError::Stopping));
    // ... and staying out, it counts as done (no deadlock).
    let t0 = Instant::now();
    assert_eq!(s.wait(gen, &[1], &|| false, &no_kick), Ok(()));
    assert!(t0.elapsed() >= blocked_after - Duration::from_millis(1));
    // Counted on, it injects again as soon as it enters.
    s.entering(1);
    assert_eq!(s.nmi_due(1), Some(FlushList::new(R)));
}

#[test]
fn a_timeout_says_who_and_what_was_tried() {
    let timing = Timing { ack_timeout: Duration::from_millis(30), ..patient() };
    let s = Shootdown::with_timing(2, timing);
    s.entering(1);
    let (gen, asked) = s.request(0, R);
    assert!(s.nmi_due(1).is_some());
    let err = s.wait(gen, &asked, &|| false, &no_kick).unwrap_err();
    let WaitError::Timeout(stuck) = err else { panic!("{err:?}") };
    assert_eq!((stuck.vcpu, stuck.nmis), (1, 1));
    assert!(stuck.kicks >= 3, "{stuck:?}");
    let msg = FlushError::Timeout(stuck).to_string();
    assert!(msg.starts_with("vCPU 1 did not acknowledge a TLB shootdown within 30ms (kicks sent: "), "{msg}");
    assert!(msg.ends_with("; NMIs injected into it in this run: 1)"), "{msg}");
}

#[test]
fn lists_and_coalescing() {
    let l = FlushList::new(&[(0x1234, 0x10), (0x5000, 0x2001)]);
    assert_eq!(l.0, vec![2, 0x1000, 1, 0x5000, 3]);
    assert_eq!(l.to_bytes().len(), 5 * 8);
    assert_eq!(FlushList::new(&[]).to_bytes(), 0u64.to_le_bytes(), "a probe is the count word only");
    let mut r = vec![(0x3000, 0x1000), (0x1000, 0x2000), (0x8000, 0x1000), (0x1800, 0x100)];
    coalesce(&mut r);
    assert_eq!(r, vec![(0x1000, 0x3000), (0x8000, 0x1000)]);
}

#[test]
fn a_vcpu_that_stays_out_holds_a_bounded_list() {
    // vCPU 1 never enters while the caller shoots down 10,000 distinct
    // ranges: its pending list must not grow with them.
    let s = Shootdown::with_timing(2, patient());
    for i in 0..10_000u64 {
        let (gen, asked) = s.request(0, &[(i * 0x2000, 0x1000)]);
        assert_eq!(s.wait(gen, &asked, &|| false, &no_kick), Ok(()));
    }
    assert!(s.pending_len(1) <= MAX_PENDING, "{} ranges pending", s.pending_len(1));
    // Too many to list: its next entry flushes everything, once.
    s.entering(1);
    assert_eq!(s.nmi_due(1), Some(FlushList::everything()));
    s.acked(1);
    assert_eq!(s.nmi_due(1), None);
    // Below the bound, ranges are listed as before.
    let (gen, _) = s.request(0, R);
    assert_eq!(s.nmi_due(1), Some(FlushList::new(R)));
    s.acked(1);
    assert_eq!(s.wait(gen, &[1], &|| true, &no_kick), Ok(()));
}

#[test]
fn everything_is_one_full_flush() {
    let s = Shootdown::with_timing(2, patient());
    s.entering(1);
    let (gen, _) = s.request(0, &[(0x5000, 0x1000), EVERYTHING]);
    assert_eq!(s.nmi_due(1), Some(FlushList::everything()));
    s.acked(1);
    assert_eq!(s.wait(gen, &[1], &|| true, &no_kick), Ok(()));
    assert_eq!(s.nmi_due(0), Some(FlushList::everything()), "the caller too");
}

#[test]
fn a_range_longer_than_the_ceiling_is_one_full_flush() {
    let s = Shootdown::with_timing(1, patient());
    let page = 0x1000;
    // At the ceiling: listed page by page.
    let at = [(0x10_0000, FULL_FLUSH_CEILING * page)];
    let (gen, _) = s.request(0, &at);
    assert_eq!(s.nmi_due(0), Some(FlushList::new(&at)));
    s.acked(0);
    assert_eq!(s.wait(gen, &[0], &|| false, &no_kick), Ok(()));
    // One page more, or short ranges that coalesce past it: everything.
    let over = [(0x10_0000, (FULL_FLUSH_CEILING + 1) * page)];
    let (gen, _) = s.request(0, &over);
    assert_eq!(s.nmi_due(0), Some(FlushList::everything()));
    s.acked(0);
    assert_eq!(s.nmi_due(0), None);
    assert_eq!(s.wait(gen, &[0], &|| false, &no_kick), Ok(()));
    let pieces: Vec<Range> = (0..=FULL_FLUSH_CEILING).map(|i| (0x40_0000 + i * page, page)).collect();
    let (gen, _) = s.request(0, &pieces);
    assert_eq!(s.nmi_due(0), Some(FlushList::everything()));
    s.acked(0);
    assert_eq!(s.wait(gen, &[0], &|| false, &no_kick), Ok(()));
    // Then ranges are listed as before.
    let (gen, _) = s.request(0, R);
    assert_eq!(s.nmi_due(0), Some(FlushList::new(R)));
    s.acked(0);
    assert_eq!(s.wait(gen, &[0], &|| false, &no_kick), Ok(()));
}
