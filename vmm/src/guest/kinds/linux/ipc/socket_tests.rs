//! Socket pairs against a model: per direction, a byte queue for
//! streams and a message queue for datagrams and packets; shutdown and
//! close as `af_unix` gives them.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;

use proptest::prelude::*;

use super::error::IpcError;
use super::socket::{MsgFlags, Received, SockType, SocketPair, MAX_DGRAM, SOCK_BUF};
use super::wait::{Io, Want};

const NB: MsgFlags = MsgFlags { nonblock: true, peek: false };
const BLOCK: MsgFlags = MsgFlags { nonblock: false, peek: false };

fn recv(s: &mut SocketPair, side: usize, len: usize, f: MsgFlags) -> Result<Io<Received>, IpcError> {
    s.recv(side, len, f)
}

fn data(r: Result<Io<Received>, IpcError>) -> Vec<u8> {
    match r {
        Ok(Io::Ready(r)) => r.data,
        other => panic!("not ready: {other:?}"),
    }
}

#[test]
fn a_stream_carries_bytes_both_ways_and_ends_at_shutdown() {
    let mut s = SocketPair::new(SockType::Stream);
    assert_eq!(s.send(0, b"ping", BLOCK), Ok(Io::Ready(4)));
    assert_eq!(s.send(1, b"pong!", BLOCK), Ok(Io::Ready(5)));
    assert_eq!(data(recv(&mut s, 1, 2, BLOCK)), b"pi");
    assert_eq!(data(recv(&mut s, 1, 100, MsgFlags { nonblock: false, peek: true })), b"ng");
    assert_eq!(data(recv(&mut s, 1, 100, BLOCK)), b"ng");
    assert_eq!(data(recv(&mut s, 0, 100, BLOCK)), b"pong!");
    assert_eq!(recv(&mut s, 0, 100, NB), Err(IpcError::WouldBlock));
    assert_eq!(recv(&mut s, 0, 100, BLOCK), Ok(Io::Wait { want: Want::Readable, done: 0 }));
    s.shutdown(1, libc::SHUT_WR).unwrap();
    assert_eq!(data(recv(&mut s, 0, 100, BLOCK)), b"", "the peer's SHUT_WR is our end of data");
    assert_eq!(s.send(1, b"x", BLOCK), Err(IpcError::BrokenPipe));
    assert_eq!(s.send(0, b"x", BLOCK), Ok(Io::Ready(1)), "the other way still works");
    assert_eq!(s.shutdown(0, 7), Err(IpcError::Invalid));
}

#[test]
fn closing_a_stream_end_hangs_up_the_peer_and_unread_data_resets_it() {
    let mut s = SocketPair::new(SockType::Stream);
    s.send(0, b"left behind", BLOCK).unwrap();
    s.close(1);
    assert_ne!(s.poll(0) & libc::POLLHUP, 0);
    assert_eq!(recv(&mut s, 0, 10, BLOCK), Err(IpcError::ConnReset));
    assert_eq!(data(recv(&mut s, 0, 10, BLOCK)), b"", "then the end of the stream");
    assert_eq!(s.send(0, b"x", BLOCK), Err(IpcError::BrokenPipe));
    s.close(0);
    assert!(!s.is_open(0) && !s.is_open(1));
}

#[test]
fn datagrams_keep_their_boundaries_and_truncate() {
    for ty in [SockType::Dgram, SockType::SeqPacket] {
        let mut s = SocketPair::new(ty);
        s.send(0, b"one", BLOCK).unwrap();
        s.send(0, b"", BLOCK).unwrap();
        s.send(0, b"three", BLOCK).unwrap();
        assert_eq!(data(recv(&mut s, 1, 100, BLOCK)), b"one");
        let empty = recv(&mut s, 1, 100, BLOCK);
        assert_eq!(empty, Ok(Io::Ready(Received { data: vec![], full_len: 0 })), "{ty:?}: an empty datagram");
        assert_eq!(recv(&mut s, 1, 2, BLOCK), Ok(Io::Ready(Received { data: b"th".to_vec(), full_len: 5 })));
        assert_eq!(recv(&mut s, 1, 100, NB), Err(IpcError::WouldBlock), "{ty:?}: the rest was dropped");
        assert_eq!(s.send(0, &vec![0; MAX_DGRAM + 1], BLOCK), Err(IpcError::MsgSize));
    }
}

#[test]
fn a_datagram_peer_that_closed_refuses_then_is_not_connected() {
    let mut s = SocketPair::new(SockType::Dgram);
    s.close(1);
    assert_eq!(s.send(0, b"x", BLOCK), Err(IpcError::ConnRefused));
    assert_eq!(s.send(0, b"x", BLOCK), Err(IpcError::NotConnected));
    assert_eq!(recv(&mut s, 0, 1, BLOCK), Ok(Io::Wait { want: Want::Readable, done: 0 }), "no hang-up for datagrams");
    let mut q = SocketPair::new(SockType::SeqPacket);
    q.close(0);
    assert_eq!(q.send(1, b"x", BLOCK), Err(IpcError::BrokenPipe));
    assert_eq!(data(recv(&mut q, 1, 1, BLOCK)), b"");
}

#[test]
fn a_full_stream_takes_what_fits_then_would_wait() {
    let mut s = SocketPair::new(SockType::Stream);
    let big = vec![1u8; SOCK_BUF + 100];
    assert_eq!(s.send(0, &big, NB), Ok(Io::Ready(SOCK_BUF)));
    assert_eq!(s.send(0, b"x", NB), Err(IpcError::WouldBlock));
    assert_eq!(s.send(0, b"x", BLOCK), Ok(Io::Wait { want: Want::Writable, done: 0 }));
    assert_eq!(s.poll(0) & libc::POLLOUT, 0);
    assert_ne!(s.poll(1) & libc::POLLIN, 0);
}

#[derive(Debug, Clone)]
enum Op {
    Send(usize, usize),
    Recv(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..2, 0usize..5000).prop_map(|(s, n)| Op::Send(s, n)),
        (0usize..2, 0usize..6000).prop_map(|(s, n)| Op::Recv(s, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Each direction of a pair behaves as its own queue: bytes for a
    /// stream (a recv takes a prefix), whole messages cut to the buffer
    /// for datagrams and packets; nothing crosses between directions.
    #[test]
    fn both_directions_match_their_own_queues(ops in proptest::collection::vec(op(), 1..60), kind in 0u8..3) {
        let ty = [SockType::Stream, SockType::Dgram, SockType::SeqPacket][usize::from(kind)];
        let mut s = SocketPair::new(ty);
        let mut bytes: [VecDeque<u8>; 2] = Default::default();
        let mut msgs: [VecDeque<Vec<u8>>; 2] = Default::default();
        let mut seed = 0u8;
        for op in ops {
            match op {
                Op::Send(side, n) => {
                    let d: Vec<u8> = (0..n).map(|i| seed.wrapping_add(i as u8)).collect();
                    seed = seed.wrapping_add(7);
                    match s.send(side, &d, NB) {
                        Ok(Io::Ready(k)) => {
                            if ty == SockType::Stream {
                                bytes[side ^ 1].extend(&d[..k]);
                            } else {
                                prop_assert_eq!(k, n);
                                msgs[side ^ 1].push_back(d);
                            }
                        }
                        Err(IpcError::WouldBlock) => {}
                        other => prop_assert!(false, "send: {:?}", other),
                    }
                }
                Op::Recv(side, n) => {
                    let got = s.recv(side, n, NB);
                    if ty == SockType::Stream {
                        let q = &mut bytes[side];
                        if q.is_empty() && n > 0 {
                            prop_assert_eq!(got, Err(IpcError::WouldBlock));
                        } else {
                            let want: Vec<u8> = q.drain(..n.min(q.len())).collect();
                            prop_assert_eq!(got, Ok(Io::Ready(Received { full_len: want.len(), data: want })));
                        }
                    } else {
                        match msgs[side].pop_front() {
                            None => prop_assert_eq!(got, Err(IpcError::WouldBlock)),
                            Some(m) => prop_assert_eq!(
                                got,
                                Ok(Io::Ready(Received { data: m[..n.min(m.len())].to_vec(), full_len: m.len() }))
                            ),
                        }
                    }
                }
            }
        }
    }
}
