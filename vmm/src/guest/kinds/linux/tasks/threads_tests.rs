//! Threads over a real [`HostedKernel`] (guest memory, guest-mm page
//! tables, no KVM): a switch between threads of one process asks the
//! vCPU for the FS base alone (no CR3 load, so no TLB flush) while a
//! switch to another process asks for its CR3; a thread's `exit` zeroes
//! its `CLONE_CHILD_CLEARTID` word and wakes a waiter there; a process's
//! signal goes to a thread that does not block it, and wakes it from a
//! sleep; a default-fatal signal to another process ends it at once
//! unless each of its threads blocks it; a slice timer's preemption
//! picks threads by tid (the FS base alone within a process);
//! `exit_group`'s table work ends every thread of the group.

#![allow(clippy::unwrap_used)]

use guest_mm::{GuestVirtAddr, Pfn};
use kvm_bindings::kvm_regs;

use super::super::futex::{FutexKey, MATCH_ANY};
use super::super::process::Linux;
use super::super::signal::info::{Fields, SigInfo};
use super::switch::{CloneArgs, Leave};
use crate::guest::elf_program::build_elf;
use crate::guest::user_state::{FpuAccess, FxImage, UserState};
use crate::hosted::hypercall::HostedKernel;
use crate::hosted::mapper::{Access, Mapper};
use crate::hosted::providers::Providers;
use crate::memory::create_guest_memory;

/// Two user read/write pages.
const DATA: u64 = 0x40_0000;
const TLS_A: u64 = 0x7000_0000;

struct NoFpu;

impl FpuAccess for NoFpu {
    fn read_fpu(&self) -> Result<FxImage, String> {
        Err("no FPU here".into())
    }
    fn write_fpu(&self, _: &FxImage) -> Result<(), String> {
        Err("no FPU here".into())
    }
}

fn setup() -> (HostedKernel, Linux) {
    let mem = create_guest_memory(64 << 20).unwrap();
    let mut m = Mapper::new(mem.clone()).unwrap();
    let providers = Providers::new(&m, &mem, &[]).unwrap();
    let pfns: Vec<Pfn> = (0..2).map(|i| Pfn(0x2000 + i)).collect();
    m.map_user_pages(GuestVirtAddr::try_new(DATA).unwrap(), &pfns, Access::RW).unwrap();
    let (hv, _, _) = crate::hosted::hypercall::test_kernel::kernel(mem, m, providers);
    let elf = build_elf(0x40_1000, &[(0x60_0000, &[0x90; 16], 16, 5)]);
    let linux = Linux::detached("/bin/threads-test", &elf, 1).unwrap();
    (hv, linux)
}

fn regs(rip: u64) -> kvm_regs {
    kvm_regs { rip, rsp: DATA + 0x1000, ..Default::default() }
}

#[test]
fn threads_of_one_process_switch_without_a_cr3_load() {
    let (hv, linux) = setup();
    let main = linux.tid();
    let cr3 = hv.mapper().cr3();
    let fpu = NoFpu;
    let mut user = UserState::new(regs(0x40_1000), &fpu);
    let c = CloneArgs { stack: DATA + 0x800, tls: Some(TLS_A), parent_settid: Some(DATA), ..Default::default() };
    let tid = linux.spawn_thread(&hv, 0, &user, &regs(0x40_1002), c);
    assert!(tid > i64::from(main), "a tid: {tid}");
    let tid = tid as u32;
    // CLONE_PARENT_SETTID: the parent's word holds the tid now.
    assert_eq!(hv.read_user(0, DATA, 4).unwrap(), tid.to_le_bytes());
    assert_eq!(linux.tasks().threads(main), vec![main, tid]);

    // To the thread: its registers, stack and FS base; no CR3 switch.
    let fs = linux.switch_to(&hv, 0, &mut user, tid, Leave::Ready);
    assert_eq!(fs, Some(TLS_A));
    assert!(hv.take_switch(0).is_none(), "a switch within the process asked for a CR3 load");
    assert_eq!((user.regs.rip, user.regs.rsp, user.regs.rax), (0x40_1002, DATA + 0x800, 0));
    assert_eq!((linux.tid(), linux.pid()), (tid, main));
    assert_eq!(hv.mapper().cr3(), cr3);

    // Back to the leader: its own registers and FS base (0 here).
    let fs = linux.switch_to(&hv, 0, &mut user, main, Leave::Ready);
    assert_eq!(fs, Some(0));
    assert!(hv.take_switch(0).is_none());
    assert_eq!(user.regs.rip, 0x40_1000);

    // A forked child is another process: its CR3 is asked for.
    let resume = regs(0x40_1004);
    let (child, _) = linux.fork(&hv, 0, &mut user, &resume, None, false).unwrap();
    let child = child as u32;
    assert_eq!(linux.tasks().threads(child), vec![child], "a fork's child has one thread");
    let fs = linux.switch_to(&hv, 0, &mut user, child, Leave::Ready);
    assert_eq!(fs, None, "the FS base comes with the process switch");
    let sw = hv.take_switch(0).expect("a process switch loads CR3");
    assert_ne!(sw.cr3, cr3);
    assert_eq!(sw.cr3, hv.mapper().cr3());
}

#[test]
fn a_thread_exit_clears_its_tid_word_and_wakes_its_waiter() {
    let (hv, linux) = setup();
    let main = linux.tid();
    let fpu = NoFpu;
    let mut user = UserState::new(regs(0x40_1000), &fpu);
    let word = DATA + 0x10;
    let c = CloneArgs { child_cleartid: Some(word), child_settid: Some(word), ..Default::default() };
    let tid = linux.spawn_thread(&hv, 0, &user, &regs(0x40_1002), c) as u32;
    // The joiner waits on the tid word (as pthread_join does).
    let key = FutexKey::Private { mm: main, addr: word };
    linux.futexes().wait(main, key, MATCH_ANY, None);
    let _ = linux.switch_to(&hv, 0, &mut user, tid, Leave::Blocked(None));
    // CLONE_CHILD_SETTID: written before the thread first ran.
    assert_eq!(hv.read_user(0, word, 4).unwrap(), tid.to_le_bytes());

    let fx = linux.exit_thread(&hv, 0, &mut user, 3);
    assert_eq!(fx.exit_group, None, "another thread lives: not the process's end");
    assert_eq!(hv.read_user(0, word, 4).unwrap(), [0; 4]);
    assert_eq!(linux.futexes().state(main), Some(true), "the joiner was woken");
    assert_eq!(linux.tid(), main);
    assert_eq!(linux.tasks().threads(main), vec![main]);
    assert!(linux.tasks().get(tid).is_none(), "a thread is reaped by nobody");

    // The last thread's exit is the process's.
    let fx = linux.exit_thread(&hv, 0, &mut user, 4);
    assert_eq!(fx.exit_group, Some(4));
}

#[test]
fn a_process_signal_goes_to_a_thread_that_does_not_block_it() {
    let (hv, linux) = setup();
    let main = linux.tid();
    let fpu = NoFpu;
    let user = UserState::new(regs(0x40_1000), &fpu);
    let usr1 = 10;
    let bit = 1u64 << (usr1 - 1);
    linux.proc().sigmask = bit;
    let t1 = linux.spawn_thread(&hv, 0, &user, &regs(0x40_1002), CloneArgs::default()) as u32;
    linux.proc().sigmask = 0;
    let t2 = linux.spawn_thread(&hv, 0, &user, &regs(0x40_1002), CloneArgs::default()) as u32;
    linux.proc().sigmask = bit;
    let info = SigInfo { signo: usr1, code: 0, fields: Fields::Sender { pid: main, uid: 0 } };
    // The running leader and t1 block it: t2 takes it.
    linux.post_to_process(main, info);
    let pending = |t: u32| linux.tasks().saved_mut(t).map(|s| s.proc.pending.contains_key(&usr1));
    assert_eq!((pending(t1), pending(t2)), (Some(false), Some(true)));
    assert!(!linux.proc().pending.contains_key(&usr1));
    // A thread-directed one goes to its thread, blocked or not.
    linux.post_to_thread(t1, info).unwrap();
    assert_eq!(pending(t1), Some(true));
    assert_eq!(linux.post_to_thread(9999, info), Err(libc::ESRCH));
}

#[test]
fn a_signal_wakes_a_sleeping_thread_and_a_fatal_one_is_decided_per_thread() {
    use super::table::State;
    let (hv, linux) = setup();
    let main = linux.tid();
    let fpu = NoFpu;
    let mut user = UserState::new(regs(0x40_1000), &fpu);
    let usr1 = 10;
    let info = SigInfo { signo: usr1, code: 0, fields: Fields::Sender { pid: main, uid: 0 } };
    let t1 = linux.spawn_thread(&hv, 0, &user, &regs(0x40_1002), CloneArgs::default()) as u32;
    // The leader sleeps in nanosleep (a call made again until then).
    let far = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    linux.proc().sleep = Some((DATA, far));
    let _ = linux.switch_to(&hv, 0, &mut user, t1, Leave::Sleeping(far));
    assert!(matches!(linux.tasks().get(main).unwrap().state, State::Sleeping { .. }));
    linux.post_to_thread(main, info).unwrap();
    assert!(matches!(linux.tasks().get(main).unwrap().state, State::Ready(_)), "woken to see it: EINTR");

    // Another process: SIGUSR1's default ends it at once unless every
    // thread of it blocks it; SIGCHLD's default is to ignore it.
    let resume = regs(0x40_1004);
    let (child, _) = linux.fork(&hv, 0, &mut user, &resume, None, false).unwrap();
    let child = child as u32;
    assert!(linux.fatal_at_once(child, usr1));
    assert!(!linux.fatal_at_once(child, 17));
    linux.tasks().saved_mut(child).unwrap().proc.sigmask = 1 << (usr1 - 1);
    assert!(!linux.fatal_at_once(child, usr1), "its only thread blocks it");
}

#[test]
fn preemption_switches_threads_by_tid_with_the_fs_base_and_processes_with_cr3() {
    use crate::guest::kind::Preempted;
    let (hv, linux) = setup();
    let main = linux.tid();
    let fpu = NoFpu;
    let mut user = UserState::new(regs(0x40_1000), &fpu);
    let over = || std::thread::sleep(super::switch::SLICE + std::time::Duration::from_millis(2));
    // Alone: a kick changes nothing.
    over();
    assert_eq!(linux.preempt(&hv, 0, &mut user), None);
    let c = CloneArgs { tls: Some(TLS_A), ..Default::default() };
    let tid = linux.spawn_thread(&hv, 0, &user, &regs(0x40_1002), c) as u32;
    // Within its slice: left alone.
    linux.cpus().slice_start[0] = std::time::Instant::now();
    assert_eq!(linux.preempt(&hv, 0, &mut user), None);
    // Its slice over: the other thread, with its FS base and no CR3 load.
    over();
    assert_eq!(linux.preempt(&hv, 0, &mut user), Some(Preempted { fs_base: Some(TLS_A) }));
    assert!(hv.take_switch(0).is_none(), "a switch within the process asked for a CR3 load");
    assert_eq!((linux.tid(), linux.pid(), user.regs.rip), (tid, main, 0x40_1002));
    // Another process: its CR3 (and FS base) through the switch request.
    let (child, _) = linux.fork(&hv, 0, &mut user, &regs(0x40_1004), None, false).unwrap();
    over();
    assert_eq!(linux.preempt(&hv, 0, &mut user), Some(Preempted { fs_base: None }));
    assert_eq!(linux.tid(), child as u32);
    assert!(hv.take_switch(0).is_some(), "a process switch loads CR3");
}
