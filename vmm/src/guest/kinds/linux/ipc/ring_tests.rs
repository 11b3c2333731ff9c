//! The pipe ring against a model: the bytes read are the bytes written,
//! in order (a `VecDeque<u8>`), never more than the size is held, a
//! write of at most `PIPE_BUF` bytes is taken whole or not at all, and
//! the slot counts Linux's `pipe_write` gives (merging, page-aligned
//! rest, packets, spliced pages) hold for the cases the man pages and
//! the selftests rely on.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;

use proptest::prelude::*;

use super::ring::{round_size, PipeRing, SizeError, WriteMode, DEFAULT_SLOTS, PAGE, PIPE_BUF};

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
}

#[test]
fn a_new_pipe_holds_64_kib_of_one_byte_writes_and_no_more() {
    let mut r = PipeRing::default();
    assert_eq!(r.size(), 65536);
    let mut n = 0;
    while r.write(&[7], WriteMode::Stream, 0) == 1 {
        n += 1;
        assert!(n <= 65536, "more than the size taken");
    }
    assert_eq!(n, 65536);
    assert!(r.is_full());
    assert_eq!(r.len(), 65536);
}

#[test]
fn small_writes_that_do_not_merge_take_a_slot_each() {
    // 3000 + 3000 > 4096: every write starts a page.
    let mut r = PipeRing::default();
    for i in 0..DEFAULT_SLOTS {
        assert_eq!(r.write(&bytes(3000, i as u8), WriteMode::Stream, 0), 3000, "write {i}");
    }
    assert_eq!(r.used_slots(), DEFAULT_SLOTS);
    assert_eq!(r.write(&bytes(3000, 0), WriteMode::Stream, 0), 0, "full: atomic write not split");
    // 1096 bytes still fit in the last page: a write that small merges.
    assert_eq!(r.write(&bytes(1096, 0), WriteMode::Stream, 0), 1096);
    assert_eq!(r.write(&[1], WriteMode::Stream, 0), 0);
    assert_eq!(r.len(), 16 * 3000 + 1096);
}

#[test]
fn a_large_write_merges_its_short_part_first_then_fills_whole_pages() {
    let mut r = PipeRing::default();
    assert_eq!(r.write(&[1; 100], WriteMode::Stream, 0), 100);
    // 5000 = 904 + 4096: 904 merge into the first page, 4096 take one.
    assert_eq!(r.write(&bytes(5000, 3), WriteMode::Stream, 0), 5000);
    assert_eq!(r.used_slots(), 2);
    let mut want = vec![1u8; 100];
    want.extend(bytes(5000, 3));
    assert_eq!(r.read(usize::MAX), want);
    assert!(r.is_empty());
}

#[test]
fn what_was_read_from_the_last_page_is_not_room_for_merging() {
    let mut r = PipeRing::default();
    r.write(&[0; 4000], WriteMode::Stream, 0);
    assert_eq!(r.read(3000).len(), 3000);
    // 1000 bytes unread, but the page's data ends at 4000: 200 cannot merge.
    assert_eq!(r.write(&[1; 200], WriteMode::Stream, 0), 200);
    assert_eq!(r.used_slots(), 2);
}

#[test]
fn packets_are_read_one_at_a_time_and_the_rest_dropped() {
    let mut r = PipeRing::default();
    r.write(b"hello", WriteMode::Packet, 0);
    r.write(b"world", WriteMode::Packet, 0);
    assert_eq!(r.used_slots(), 2, "packets never merge");
    assert_eq!(r.read(100), b"hello");
    assert_eq!(r.read(3), b"wor");
    assert!(r.is_empty(), "the rest of a packet read short is dropped");
    // A packet write over a page is one packet per page.
    r.write(&bytes(PAGE + 10, 0), WriteMode::Packet, 0);
    assert_eq!(r.read(usize::MAX).len(), PAGE);
    assert_eq!(r.read(usize::MAX).len(), 10);
}

#[test]
fn spliced_data_takes_one_slot_per_user_page_touched() {
    let mut r = PipeRing::default();
    // 8 KiB starting 100 bytes into a page touches three pages.
    assert_eq!(r.write(&bytes(8192, 0), WriteMode::Spliced, 100), 8192);
    assert_eq!(r.used_slots(), 3);
    assert_eq!(r.write(&[1], WriteMode::Stream, 0), 1);
    assert_eq!(r.used_slots(), 4, "a spliced page is not merged into");
    assert_eq!(r.read(usize::MAX).len(), 8193);
}

#[test]
fn set_size_rounds_refuses_and_keeps_data() {
    assert_eq!(round_size(0), Some(4096));
    assert_eq!(round_size(4097), Some(8192));
    assert_eq!(round_size((1 << 31) + 1), None);
    let mut r = PipeRing::default();
    assert_eq!(r.set_size(1, false), Ok(4096));
    assert_eq!(r.set_size(100_000, false), Ok(131_072));
    assert_eq!(r.set_size(2 << 20, false), Err(SizeError::NotPermitted));
    assert_eq!(r.set_size(2 << 20, true), Ok(2 << 20));
    assert_eq!(r.set_size(u64::from(u32::MAX), true), Err(SizeError::Invalid));
    for _ in 0..3 {
        r.write(&[0; PAGE], WriteMode::Stream, 0);
    }
    assert_eq!(r.set_size(8192, false), Err(SizeError::Busy));
    assert_eq!(r.set_size(16384, false), Ok(16384));
    assert_eq!(r.len(), 3 * PAGE);
    assert_eq!(SizeError::Busy.errno(), libc::EBUSY);
}

#[derive(Debug, Clone)]
enum Op {
    Write(usize),
    Read(usize),
    Resize(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..3 * PAGE).prop_map(Op::Write),
        2 => (1usize..PIPE_BUF).prop_map(Op::Write),
        3 => (0usize..3 * PAGE).prop_map(Op::Read),
        1 => (0u64..(1 << 18)).prop_map(Op::Resize),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Plain writes and reads against a byte queue: what is read is what
    /// was written, in order; the ring never holds more than its size
    /// nor uses more slots; small writes are all or nothing; a write into
    /// a ring with a free slot takes something; a resize below what is
    /// held is refused and changes nothing.
    #[test]
    fn stream_writes_and_reads_match_a_byte_queue(ops in proptest::collection::vec(op(), 1..80)) {
        let mut r = PipeRing::default();
        let mut model: VecDeque<u8> = VecDeque::new();
        let mut seed = 0u8;
        for op in ops {
            match op {
                Op::Write(n) => {
                    let data = bytes(n, seed);
                    seed = seed.wrapping_add(1);
                    let free_slot = !r.is_full();
                    let took = r.write(&data, WriteMode::Stream, 0);
                    prop_assert!(took <= n);
                    if n <= PIPE_BUF {
                        prop_assert!(took == 0 || took == n, "a write of {} split at {}", n, took);
                    }
                    if free_slot && n > 0 {
                        prop_assert!(took > 0, "a free slot and nothing taken");
                    }
                    model.extend(&data[..took]);
                }
                Op::Read(n) => {
                    let got = r.read(n);
                    let want: Vec<u8> = model.drain(..n.min(model.len())).collect();
                    prop_assert_eq!(got, want);
                }
                Op::Resize(n) => {
                    let before = r.clone();
                    match r.set_size(n, false) {
                        Ok(sz) => prop_assert_eq!(sz, round_size(n).unwrap()),
                        Err(SizeError::Busy) => prop_assert_eq!(&r, &before),
                        Err(e) => prop_assert!(false, "unexpected {:?}", e),
                    }
                }
            }
            prop_assert_eq!(r.len(), model.len());
            prop_assert!(r.used_slots() as u64 * PAGE as u64 <= r.size(), "more slots used than the size");
            prop_assert!(r.len() as u64 <= r.used_slots() as u64 * PAGE as u64);
            prop_assert_eq!(r.is_empty(), model.is_empty());
        }
    }
}
