//! The pipe, socket-pair, `vmsplice`, `poll` and `prctl` calls through
//! the table ([`super::dispatch`]) for a process over a real
//! [`HostedKernel`] (guest memory, guest-mm page tables, no KVM): return
//! values, errno values, what lands in the program's memory, pending
//! `SIGPIPE`, and the end of the run when a wait could never end.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use guest_mm::{GuestVirtAddr, Pfn};

use super::super::process::Linux;
use super::super::signal::info::sig;
use super::super::signal::timer::RealTimer;
use super::{dispatch, RESTART};
use crate::guest::elf_program::build_elf;
use crate::hosted::hypercall::{Args, Block, HostedKernel, Outcome};
use crate::hosted::mapper::{Access, Mapper};
use crate::hosted::providers::Providers;
use crate::memory::create_guest_memory;

/// Four user read/write pages; nothing mapped after them.
const BUF: u64 = 0x40_0000;
const UNMAPPED: u64 = BUF + 0x4000;
/// Where the tests keep small structures (fds, iovecs, msghdrs).
const SCRATCH: u64 = BUF + 0x3000;

struct T {
    hv: HostedKernel,
    linux: Linux,
}

fn setup() -> T {
    let mem = create_guest_memory(64 << 20).unwrap();
    let mut m = Mapper::new(mem.clone()).unwrap();
    let providers = Providers::new(&m, &mem, &[]).unwrap();
    let pfns: Vec<Pfn> = (0..4).map(|i| Pfn(0x2000 + i)).collect();
    m.map_user_pages(GuestVirtAddr::try_new(BUF).unwrap(), &pfns, Access::RW).unwrap();
    let (hv, _, _) = crate::hosted::hypercall::test_kernel::kernel(mem, m, providers);
    let elf = build_elf(0x40_1000, &[(0x60_0000, &[0x90; 16], 16, 5)]);
    let linux = Linux::detached("/bin/pipes-test", &elf, 1).unwrap();
    T { hv, linux }
}

impl T {
    fn call(&self, nr: i64, a: &[u64]) -> Outcome {
        let mut args = [0u64; 6];
        args[..a.len()].copy_from_slice(a);
        dispatch(&self.hv, 0, &self.linux, &Args { nr: nr as u64, a: args })
    }

    fn ok(&self, nr: i64, a: &[u64]) -> i64 {
        let o = self.call(nr, a);
        assert!(o.ret >= 0, "call {nr}{a:x?}: {}", o.ret);
        o.ret
    }

    fn put(&self, va: u64, b: &[u8]) {
        self.hv.copy_to_user(va, b).unwrap();
    }

    fn get(&self, va: u64, n: u64) -> Vec<u8> {
        self.hv.read_user(0, va, n).unwrap()
    }

    /// `pipe2(flags)`: (read fd, write fd).
    fn pipe(&self, flags: i32) -> (u64, u64) {
        self.ok(libc::SYS_pipe2, &[SCRATCH, flags as u64]);
        let b = self.get(SCRATCH, 8);
        (i32::from_le_bytes(b[..4].try_into().unwrap()) as u64, i32::from_le_bytes(b[4..].try_into().unwrap()) as u64)
    }

    fn socketpair(&self, ty: i32) -> (u64, u64) {
        self.ok(libc::SYS_socketpair, &[libc::AF_UNIX as u64, ty as u64, 0, SCRATCH]);
        let b = self.get(SCRATCH, 8);
        (i32::from_le_bytes(b[..4].try_into().unwrap()) as u64, i32::from_le_bytes(b[4..].try_into().unwrap()) as u64)
    }

    fn write(&self, fd: u64, data: &[u8]) -> i64 {
        self.put(BUF, data);
        self.call(libc::SYS_write, &[fd, BUF, data.len() as u64]).ret
    }

    /// `read(fd, BUF + 0x2000, n)`: the bytes, or the negative return.
    fn read(&self, fd: u64, n: u64) -> Result<Vec<u8>, i64> {
        let r = self.call(libc::SYS_read, &[fd, BUF + 0x2000, n]).ret;
        if r < 0 {
            return Err(r);
        }
        Ok(self.get(BUF + 0x2000, r as u64))
    }

    fn pending(&self, s: u32) -> bool {
        self.linux.proc().pending.contains_key(&s)
    }
}

fn err(e: i32) -> i64 {
    -i64::from(e)
}

#[test]
fn a_pipe_carries_bytes_in_order_and_ends_when_the_writer_closes() {
    let t = setup();
    let (r, w) = t.pipe(0);
    assert_eq!((r, w), (3, 4), "the lowest free descriptors");
    assert_eq!(t.call(libc::SYS_fcntl, &[r, libc::F_GETFL as u64]).ret as i32 & libc::O_ACCMODE, libc::O_RDONLY);
    assert_eq!(t.call(libc::SYS_fcntl, &[w, libc::F_GETFL as u64]).ret as i32 & libc::O_ACCMODE, libc::O_WRONLY);
    t.ok(libc::SYS_fstat, &[r, SCRATCH]);
    let mode = u32::from_le_bytes(t.get(SCRATCH + 24, 4).try_into().unwrap());
    assert_eq!(mode & libc::S_IFMT, libc::S_IFIFO);
    assert_eq!(t.write(w, b"hello, "), 7);
    assert_eq!(t.write(w, b"pipe"), 4);
    assert_eq!(t.read(r, 3).unwrap(), b"hel");
    // readv over two buffers.
    let iov: Vec<u8> = [BUF + 0x2000, 2, BUF + 0x2100, 100].iter().flat_map(|v| v.to_le_bytes()).collect();
    t.put(SCRATCH, &iov);
    assert_eq!(t.call(libc::SYS_readv, &[r, SCRATCH, 2]).ret, 8);
    assert_eq!(t.get(BUF + 0x2000, 2), b"lo");
    assert_eq!(t.get(BUF + 0x2100, 6), b", pipe");
    assert_eq!(t.read(w, 1), Err(err(libc::EBADF)), "the write end cannot be read");
    assert_eq!(t.write(r, b"x"), err(libc::EBADF), "the read end cannot be written");
    assert_eq!(t.call(libc::SYS_lseek, &[r, 0, 0]).ret, err(libc::ESPIPE));
    assert_eq!(t.call(libc::SYS_pread64, &[r, BUF, 1, 0]).ret, err(libc::ESPIPE));
    t.write(w, b"tail");
    t.ok(libc::SYS_close, &[w]);
    assert_eq!(t.read(r, 100).unwrap(), b"tail", "what was written is read after the close");
    assert_eq!(t.read(r, 100).unwrap(), b"", "then the end of the data");
    t.ok(libc::SYS_close, &[r]);
    assert_eq!(t.linux.ipc().count(), 0, "the pipe is gone with its last descriptor");
}

#[test]
fn a_write_with_no_reader_is_epipe_and_sigpipe() {
    let t = setup();
    let (r, w) = t.pipe(0);
    t.ok(libc::SYS_close, &[r]);
    assert_eq!(t.write(w, b""), 0, "a write of nothing returns 0 first");
    assert!(!t.pending(sig::SIGPIPE));
    assert_eq!(t.write(w, b"x"), err(libc::EPIPE));
    assert!(t.pending(sig::SIGPIPE));
}

#[test]
fn a_dup2_over_the_last_write_descriptor_closes_that_end() {
    let t = setup();
    let (r, w) = t.pipe(0);
    t.ok(libc::SYS_dup2, &[0, w]);
    assert_eq!(t.read(r, 10).unwrap(), b"", "no writer left");
}

#[test]
fn nonblocking_ends_take_what_fits_and_say_eagain() {
    let t = setup();
    let (r, w) = t.pipe(libc::O_NONBLOCK | libc::O_CLOEXEC);
    assert_eq!(t.call(libc::SYS_fcntl, &[r, libc::F_GETFD as u64]).ret, 1, "O_CLOEXEC on both");
    assert_eq!(t.read(r, 10), Err(err(libc::EAGAIN)));
    // 16 KiB at a time fills 64 KiB in four writes, then nothing fits.
    t.put(BUF, &[0x5a; 0x3000]);
    let mut total = 0;
    loop {
        let n = t.call(libc::SYS_write, &[w, BUF, 0x3000]).ret;
        if n < 0 {
            assert_eq!(n, err(libc::EAGAIN));
            break;
        }
        total += n;
    }
    assert_eq!(total, 65536);
    assert_eq!(t.call(libc::SYS_fcntl, &[w, 1032]).ret, 65536, "F_GETPIPE_SZ");
    assert_eq!(t.call(libc::SYS_fcntl, &[w, 1031, 4096]).ret, err(libc::EBUSY), "F_SETPIPE_SZ below the data");
    assert_eq!(t.call(libc::SYS_fcntl, &[w, 1031, 100_000]).ret, 131_072);
    assert_eq!(t.call(libc::SYS_fcntl, &[0, 1032]).ret, err(libc::EBADF), "not a pipe");
    // Room again: a partial write of what fits.
    assert_eq!(t.call(libc::SYS_write, &[w, BUF, 0x3000]).ret, 0x3000);
}

#[test]
fn a_blocking_read_nobody_can_satisfy_ends_the_run_and_says_why() {
    let t = setup();
    let (r, _w) = t.pipe(0);
    let o = t.call(libc::SYS_read, &[r, BUF, 10]);
    assert_eq!(o.effects.exit_group, Some(128 + 9));
    let why = t.linux.blocked_reason().unwrap();
    assert!(why.contains("blocked forever: read on a pipe (nothing to read)"), "{why}");
}

#[test]
fn a_blocking_write_to_a_full_pipe_ends_the_run_too() {
    let t = setup();
    let (_r, w) = t.pipe(0);
    t.ok(libc::SYS_fcntl, &[w, 1031, 4096]);
    t.put(BUF, &[1; 0x2000]);
    let o = t.call(libc::SYS_write, &[w, BUF, 0x2000]);
    assert_eq!(o.effects.exit_group, Some(137));
    assert!(t.linux.blocked_reason().unwrap().contains("write on a pipe (no room to write)"));
}

#[test]
fn with_the_real_time_timer_armed_a_blocked_read_sleeps_until_it() {
    let t = setup();
    let (r, _w) = t.pipe(0);
    let deadline = Instant::now() + Duration::from_millis(50);
    t.linux.proc().itimer_real = Some(RealTimer { deadline, interval: Duration::ZERO });
    let o = t.call(libc::SYS_read, &[r, BUF, 10]);
    assert_eq!(o.ret, RESTART);
    assert_eq!(o.effects.block, Some(Block::Until(deadline)));
    assert_eq!(o.effects.exit_group, None);
    assert!(t.linux.blocked_reason().is_none());
}

#[test]
fn pipe_arguments_are_checked_and_nothing_leaks() {
    let t = setup();
    assert_eq!(t.call(libc::SYS_pipe2, &[SCRATCH, libc::O_APPEND as u64]).ret, err(libc::EINVAL));
    assert_eq!(t.call(libc::SYS_pipe, &[UNMAPPED]).ret, err(libc::EFAULT));
    assert_eq!(t.linux.ipc().count(), 0);
    assert_eq!(t.pipe(libc::O_DIRECT), (3, 4), "the failed call left no descriptor");
}

#[test]
fn o_direct_makes_packets() {
    let t = setup();
    let (r, w) = t.pipe(libc::O_DIRECT);
    t.write(w, b"first");
    t.write(w, b"second");
    assert_eq!(t.read(r, 100).unwrap(), b"first");
    assert_eq!(t.read(r, 3).unwrap(), b"sec");
    assert_eq!(t.call(libc::SYS_fcntl, &[r, libc::F_SETFL as u64, libc::O_NONBLOCK as u64]).ret, 0);
    assert_eq!(t.read(r, 3), Err(err(libc::EAGAIN)), "the packet's rest was dropped");
}

#[test]
fn vmsplice_puts_user_pages_in_and_takes_them_out() {
    let t = setup();
    let (r, w) = t.pipe(0);
    t.put(BUF + 0xff0, &[7u8; 0x20]);
    let iov: Vec<u8> = [BUF + 0xff0, 0x20].iter().flat_map(|v| v.to_le_bytes()).collect();
    t.put(SCRATCH, &iov);
    assert_eq!(t.call(libc::SYS_vmsplice, &[w, SCRATCH, 1, 0]).ret, 0x20);
    assert_eq!(t.call(libc::SYS_vmsplice, &[w, SCRATCH, 1, 0x10]).ret, err(libc::EINVAL));
    assert_eq!(t.call(libc::SYS_vmsplice, &[0, SCRATCH, 1, 0]).ret, err(libc::EBADF), "not a pipe");
    // Out of the read end into another buffer.
    let iov: Vec<u8> = [BUF + 0x2000, 0x100].iter().flat_map(|v| v.to_le_bytes()).collect();
    t.put(SCRATCH, &iov);
    assert_eq!(t.call(libc::SYS_vmsplice, &[r, SCRATCH, 1, 0]).ret, 0x20);
    assert_eq!(t.get(BUF + 0x2000, 0x20), vec![7u8; 0x20]);
}

#[test]
fn stream_socketpairs_send_receive_and_shut_down() {
    let t = setup();
    let (a, b) = t.socketpair(libc::SOCK_STREAM | libc::SOCK_CLOEXEC);
    t.put(BUF, b"over the pair");
    assert_eq!(t.call(libc::SYS_sendto, &[a, BUF, 13, 0, 0, 0]).ret, 13);
    // recvfrom with an address: none (addrlen 0).
    t.put(SCRATCH + 0x100, &16u32.to_le_bytes());
    assert_eq!(t.call(libc::SYS_recvfrom, &[b, BUF + 0x2000, 4, 0, SCRATCH, SCRATCH + 0x100]).ret, 4);
    assert_eq!(t.get(BUF + 0x2000, 4), b"over");
    assert_eq!(t.get(SCRATCH + 0x100, 4), 0u32.to_le_bytes());
    assert_eq!(t.read(b, 100).unwrap(), b" the pair", "read works on sockets");
    assert_eq!(t.write(b, b"back"), 4);
    assert_eq!(t.read(a, 100).unwrap(), b"back");
    t.ok(libc::SYS_shutdown, &[a, libc::SHUT_WR as u64]);
    assert_eq!(t.read(b, 100).unwrap(), b"", "the peer's SHUT_WR");
    assert_eq!(t.call(libc::SYS_sendto, &[a, BUF, 1, libc::MSG_NOSIGNAL as u64, 0, 0]).ret, err(libc::EPIPE));
    assert!(!t.pending(sig::SIGPIPE), "MSG_NOSIGNAL");
    assert_eq!(t.write(a, b"x"), err(libc::EPIPE));
    assert!(t.pending(sig::SIGPIPE));
    assert_eq!(t.call(libc::SYS_shutdown, &[a, 9]).ret, err(libc::EINVAL));
    let (r, _) = t.pipe(0);
    assert_eq!(t.call(libc::SYS_shutdown, &[r, 0]).ret, err(libc::ENOTSOCK));
    assert_eq!(t.call(libc::SYS_sendto, &[1, BUF, 1, 0, 0, 0]).ret, err(libc::ENOTSOCK));
    assert_eq!(t.call(libc::SYS_socketpair, &[libc::AF_INET as u64, 1, 0, SCRATCH]).ret, err(libc::EOPNOTSUPP));
    assert_eq!(t.call(libc::SYS_socketpair, &[1, 4, 0, SCRATCH]).ret, err(libc::ESOCKTNOSUPPORT), "SOCK_RDM");
}

#[test]
fn datagram_socketpairs_keep_messages_whole_through_sendmsg_and_recvmsg() {
    let t = setup();
    let (a, b) = t.socketpair(libc::SOCK_DGRAM);
    // sendmsg: two iovecs make one message.
    t.put(BUF, b"abcdef");
    let iov: Vec<u8> = [BUF, 3, BUF + 3, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    t.put(SCRATCH + 0x200, &iov);
    let mut hdr = vec![0u8; 56];
    hdr[16..24].copy_from_slice(&(SCRATCH + 0x200).to_le_bytes());
    hdr[24..32].copy_from_slice(&2u64.to_le_bytes());
    t.put(SCRATCH, &hdr);
    assert_eq!(t.call(libc::SYS_sendmsg, &[a, SCRATCH, 0]).ret, 6);
    // recvmsg into 4 bytes: truncated, MSG_TRUNC in msg_flags.
    let iov: Vec<u8> = [BUF + 0x2000, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    t.put(SCRATCH + 0x200, &iov);
    let mut hdr = vec![0u8; 56];
    hdr[16..24].copy_from_slice(&(SCRATCH + 0x200).to_le_bytes());
    hdr[24..32].copy_from_slice(&1u64.to_le_bytes());
    hdr[40..48].copy_from_slice(&64u64.to_le_bytes());
    t.put(SCRATCH, &hdr);
    assert_eq!(t.call(libc::SYS_recvmsg, &[b, SCRATCH, 0]).ret, 4);
    assert_eq!(t.get(BUF + 0x2000, 4), b"abcd");
    let out = t.get(SCRATCH, 56);
    assert_eq!(u64::from_le_bytes(out[40..48].try_into().unwrap()), 0, "no control data");
    assert_eq!(i32::from_le_bytes(out[48..52].try_into().unwrap()), libc::MSG_TRUNC);
    // Ancillary data is refused.
    hdr[40..48].copy_from_slice(&16u64.to_le_bytes());
    t.put(SCRATCH, &hdr);
    assert_eq!(t.call(libc::SYS_sendmsg, &[a, SCRATCH, 0]).ret, err(libc::EINVAL));
    // MSG_TRUNC on recv: the whole length.
    t.put(BUF, b"0123456789");
    t.ok(libc::SYS_sendto, &[a, BUF, 10, 0, 0, 0]);
    assert_eq!(t.call(libc::SYS_recvfrom, &[b, BUF + 0x2000, 2, libc::MSG_TRUNC as u64, 0, 0]).ret, 10);
    assert_eq!(t.call(libc::SYS_recvfrom, &[b, BUF, 2, libc::MSG_DONTWAIT as u64, 0, 0]).ret, err(libc::EAGAIN));
    t.ok(libc::SYS_close, &[b]);
    assert_eq!(t.call(libc::SYS_sendto, &[a, BUF, 1, 0, 0, 0]).ret, err(libc::ECONNREFUSED));
}

#[test]
fn poll_reports_pipe_readiness_and_hangups() {
    let t = setup();
    let (r, w) = t.pipe(0);
    let fds = |list: &[(i32, i16)]| -> Vec<u8> {
        list.iter()
            .flat_map(|&(fd, ev)| [fd.to_le_bytes().to_vec(), ev.to_le_bytes().to_vec(), vec![0, 0]].concat())
            .collect()
    };
    let revents = |n: usize| -> Vec<i16> {
        t.get(SCRATCH, n as u64 * 8).chunks(8).map(|e| i16::from_le_bytes([e[6], e[7]])).collect()
    };
    t.put(
        SCRATCH,
        &fds(&[(r as i32, libc::POLLIN), (w as i32, libc::POLLOUT), (99, libc::POLLIN), (-1, libc::POLLIN)]),
    );
    assert_eq!(t.call(libc::SYS_poll, &[SCRATCH, 4, 0]).ret, 2);
    assert_eq!(revents(4), vec![0, libc::POLLOUT, libc::POLLNVAL, 0]);
    t.write(w, b"x");
    t.put(SCRATCH, &fds(&[(r as i32, libc::POLLIN)]));
    assert_eq!(t.call(libc::SYS_poll, &[SCRATCH, 1, 1000]).ret, 1);
    assert_eq!(revents(1), vec![libc::POLLIN]);
    t.ok(libc::SYS_close, &[w]);
    t.put(SCRATCH, &fds(&[(r as i32, libc::POLLIN)]));
    assert_eq!(t.call(libc::SYS_poll, &[SCRATCH, 1, 0]).ret, 1);
    assert_eq!(revents(1), vec![libc::POLLIN | libc::POLLHUP]);
    // Nothing ready and a timeout: a sleep, then 0.
    let (r2, _w2) = t.pipe(0);
    t.put(SCRATCH, &fds(&[(r2 as i32, libc::POLLIN)]));
    let o = t.call(libc::SYS_poll, &[SCRATCH, 1, 30]);
    assert_eq!(o.ret, 0);
    assert!(matches!(o.effects.block, Some(Block::Until(_))));
    // And without a timeout: blocked forever.
    let o = t.call(libc::SYS_poll, &[SCRATCH, 1, u64::MAX]);
    assert_eq!(o.effects.exit_group, Some(137));
}

#[test]
fn prctl_names_dumpable_and_mdwe() {
    let t = setup();
    t.ok(libc::SYS_prctl, &[16, SCRATCH]);
    assert_eq!(t.get(SCRATCH, 16), b"pipes-test\0\0\0\0\0\0");
    t.put(BUF, b"a-very-long-name-indeed\0");
    t.ok(libc::SYS_prctl, &[15, BUF]);
    t.ok(libc::SYS_prctl, &[16, SCRATCH]);
    assert_eq!(t.get(SCRATCH, 16), b"a-very-long-nam\0", "15 bytes and a NUL");
    assert_eq!(t.call(libc::SYS_prctl, &[15, UNMAPPED]).ret, err(libc::EFAULT));
    // /proc/self/comm and status show it.
    t.put(BUF, b"/proc/self/comm\0");
    let fd = t.ok(libc::SYS_open, &[BUF, 0]) as u64;
    assert_eq!(t.read(fd, 100).unwrap(), b"a-very-long-nam\n");
    assert_eq!(t.call(libc::SYS_prctl, &[3]).ret, 1, "dumpable at start");
    t.ok(libc::SYS_prctl, &[4, 0]);
    assert_eq!(t.call(libc::SYS_prctl, &[3]).ret, 0);
    assert_eq!(t.call(libc::SYS_prctl, &[4, 2]).ret, err(libc::EINVAL));
    assert_eq!(t.call(libc::SYS_prctl, &[66]).ret, 0, "no MDWE at start");
    assert_eq!(t.call(libc::SYS_prctl, &[65, 2]).ret, err(libc::EINVAL), "NO_INHERIT alone");
    assert_eq!(t.call(libc::SYS_prctl, &[65, 1, 1]).ret, err(libc::EINVAL), "arg3 must be 0");
    t.ok(libc::SYS_prctl, &[65, 1]);
    assert_eq!(t.call(libc::SYS_prctl, &[66]).ret, 1);
    assert_eq!(t.call(libc::SYS_prctl, &[65, 0]).ret, err(libc::EPERM), "cannot be taken back");
    t.ok(libc::SYS_prctl, &[65, 1]);
    // A writable and executable mapping is refused.
    let o = t.call(libc::SYS_mmap, &[0, 4096, 7, 0x22, u64::MAX, 0]);
    assert_eq!(o.ret, err(libc::EACCES));
    assert_eq!(t.call(libc::SYS_prctl, &[1234]).ret, err(libc::EINVAL));
}
