//! The process table without KVM: wait semantics, reparenting, vfork,
//! scheduling order, kill targets, groups and sessions.

use std::time::{Duration, Instant};

use super::status::ExitKind;
use super::table::{State, TaskError, Tasks, Waited, Which};

const INIT: u32 = 100;

/// Forks a child of the running process (saved state: its pid tag).
fn fork(t: &mut Tasks<u32>, tag: u32) -> u32 {
    t.spawn(tag).expect("spawn")
}

/// Runs `pid` (the running one parked ready).
fn run(t: &mut Tasks<u32>, pid: u32) {
    let cur = t.current();
    t.park(State::Ready(cur));
    assert!(t.resume(pid).is_some(), "{pid} resumable");
    assert_eq!(t.current(), pid);
}

#[test]
fn wait_finds_only_ended_children_and_reaps_once() {
    let mut t = Tasks::new(INIT, 16);
    assert_eq!(t.wait(INIT, Which::Any, true), Waited::NoChild);
    let a = fork(&mut t, 1);
    let b = fork(&mut t, 2);
    assert_eq!((a, b), (INIT + 1, INIT + 2));
    assert_eq!(t.wait(INIT, Which::Any, true), Waited::NotYet);
    assert_eq!(t.get(a).map(|x| x.ppid), Some(INIT));
    // b ends: a wait for a still finds nothing, for any finds b.
    t.exit(b, ExitKind::Exited(7));
    assert_eq!(t.wait(INIT, Which::Pid(a), true), Waited::NotYet);
    // A peek (WNOWAIT) leaves it.
    assert_eq!(t.wait(INIT, Which::Any, false), Waited::Ended(b, ExitKind::Exited(7)));
    assert_eq!(t.wait(INIT, Which::Any, true), Waited::Ended(b, ExitKind::Exited(7)));
    assert_eq!(t.wait(INIT, Which::Pid(b), true), Waited::NoChild);
    t.exit(a, ExitKind::Signaled { sig: 9, core: false });
    assert_eq!(t.wait(INIT, Which::Pid(a), true), Waited::Ended(a, ExitKind::Signaled { sig: 9, core: false }));
    assert_eq!(t.wait(INIT, Which::Any, true), Waited::NoChild);
    assert_eq!(t.len(), 1);
    // A process is not its own child.
    assert_eq!(t.wait(INIT, Which::Pid(INIT), true), Waited::NoChild);
}

#[test]
fn orphans_go_to_the_first_process() {
    let mut t = Tasks::new(INIT, 16);
    let a = fork(&mut t, 1);
    run(&mut t, a);
    let g = fork(&mut t, 2);
    assert_eq!(t.get(g).map(|x| x.ppid), Some(a));
    let (parent, saved) = t.exit(a, ExitKind::Exited(0)).expect("exit");
    assert_eq!((parent, saved), (INIT, None), "the running one has no saved state");
    assert_eq!(t.get(g).map(|x| x.ppid), Some(INIT));
    // The first process now waits for its grandchild too.
    assert_eq!(t.wait(INIT, Which::Pid(g), true), Waited::NotYet);
    let (p, saved) = t.exit(g, ExitKind::Exited(3)).expect("exit");
    assert_eq!((p, saved), (INIT, Some(2)));
    assert_eq!(t.wait(INIT, Which::Pid(g), true), Waited::Ended(g, ExitKind::Exited(3)));
    // An ended process cannot end again.
    assert!(t.exit(g, ExitKind::Exited(1)).is_none());
}

#[test]
fn the_process_limit_is_eagain() {
    let mut t = Tasks::new(INIT, 3);
    fork(&mut t, 1);
    fork(&mut t, 2);
    assert_eq!(t.spawn(3), Err(TaskError::TooMany));
    assert_eq!(TaskError::TooMany.errno(), libc::EAGAIN);
    // A zombie still counts until reaped.
    let a = INIT + 1;
    t.exit(a, ExitKind::Exited(0));
    assert_eq!(t.spawn(3), Err(TaskError::TooMany));
    t.reap(a);
    assert!(t.spawn(3).is_ok());
}

#[test]
fn blocked_processes_wake_on_events_and_sleepers_on_time() {
    let mut t = Tasks::new(INIT, 8);
    let a = fork(&mut t, 1);
    let now = Instant::now();
    // The first process blocks: the child is next.
    let gen = t.generation();
    t.park(State::Blocked { saved: 0, gen, until: None });
    assert_eq!(t.pick_next(now), Some(a));
    t.resume(a);
    // The child sleeps: nothing can run until an event or the time.
    t.park(State::Sleeping { saved: 1, until: now + Duration::from_millis(5) });
    assert_eq!(t.pick_next(now), None);
    assert_eq!(t.next_wake(), Some((a, now + Duration::from_millis(5))));
    assert_eq!(t.pick_next(now + Duration::from_millis(5)), Some(a));
    t.event();
    assert_eq!(t.pick_next(now), Some(INIT));
}

#[test]
fn a_futex_waiter_wakes_on_unpark_or_its_deadline_not_on_events() {
    let mut t = Tasks::new(INIT, 8);
    let a = fork(&mut t, 1);
    let now = Instant::now();
    let soon = now + Duration::from_millis(5);
    // The first process blocks on a futex with a deadline; the child runs.
    let gen = t.generation();
    t.park(State::Blocked { saved: 0, gen, until: Some(soon) });
    t.park_on_futex(INIT);
    t.resume(a);
    t.park(State::Sleeping { saved: 1, until: now + Duration::from_secs(9) });
    // Other calls do not wake it; its deadline does.
    t.event();
    assert_eq!(t.pick_next(now), None);
    assert_eq!(t.next_wake(), Some((INIT, soon)));
    assert_eq!(t.pick_next(soon), Some(INIT));
    // A wake does.
    t.unpark(INIT);
    assert_eq!(t.pick_next(now), Some(INIT));
    // Once it ran, a later block of another kind wakes on events again.
    t.resume(INIT);
    let gen = t.generation();
    t.park(State::Blocked { saved: 0, gen, until: None });
    t.event();
    assert_eq!(t.pick_next(now), Some(INIT));
}

#[test]
fn round_robin_goes_past_the_running_one() {
    let mut t = Tasks::new(INIT, 8);
    let a = fork(&mut t, 1);
    let b = fork(&mut t, 2);
    let now = Instant::now();
    assert_eq!(t.pick_next(now), Some(a));
    run(&mut t, a);
    assert_eq!(t.pick_next(now), Some(b));
    run(&mut t, b);
    assert_eq!(t.pick_next(now), Some(INIT), "wraps around");
}

#[test]
fn a_vfork_parent_waits_for_its_child() {
    let mut t = Tasks::new(INIT, 8);
    let c = fork(&mut t, 1);
    t.park(State::VforkWait { saved: 0, child: c });
    assert!(t.resume(c).is_some());
    assert_eq!(t.pick_next(Instant::now()), None, "the parent cannot run yet");
    t.exit(c, ExitKind::Exited(0));
    assert_eq!(t.pick_next(Instant::now()), Some(INIT));
    assert_eq!(t.resume(INIT), Some(0));
}

#[test]
fn kill_targets_follow_linux() {
    let mut t = Tasks::new(INIT, 8);
    let a = fork(&mut t, 1);
    let b = fork(&mut t, 2);
    assert_eq!(t.kill_targets(a as i64), Ok(vec![a]));
    assert_eq!(t.kill_targets(999), Err(TaskError::NoSuchProcess));
    // 0: the caller's group (all three share the first's).
    assert_eq!(t.kill_targets(0), Ok(vec![INIT, a, b]));
    // -1: everyone but the caller and the first process.
    assert_eq!(t.kill_targets(-1), Ok(vec![a, b]));
    run(&mut t, a);
    t.setpgid(0, 0).expect("own group");
    assert_eq!(t.kill_targets(-(a as i64)), Ok(vec![a]));
    assert_eq!(t.kill_targets(-1), Ok(vec![b]));
    assert_eq!(t.kill_targets(-12345), Err(TaskError::NoSuchProcess));
}

#[test]
fn groups_and_sessions() {
    let mut t = Tasks::new(INIT, 8);
    // The first process leads its group: no new session.
    assert_eq!(t.setsid(), Err(TaskError::NotPermitted));
    let a = fork(&mut t, 1);
    // The parent moves its child into a new group, then back.
    assert_eq!(t.setpgid(a, a), Ok(()));
    assert_eq!(t.get(a).map(|x| x.pgid), Some(a));
    assert_eq!(t.setpgid(a, INIT), Ok(()));
    // A group that does not exist in the session.
    assert_eq!(t.setpgid(a, 4242), Err(TaskError::NotPermitted));
    assert_eq!(t.setpgid(4242, 0), Err(TaskError::NoSuchProcess));
    // The first process leads its session: it cannot move.
    assert_eq!(t.setpgid(0, a), Err(TaskError::NotPermitted));
    run(&mut t, a);
    assert_eq!(t.setsid(), Ok(a));
    let x = t.get(a).map(|x| (x.pgid, x.sid));
    assert_eq!(x, Some((a, a)));
    // Now a session leader: setpgid refuses, and the parent cannot
    // move it either.
    assert_eq!(t.setpgid(0, 0), Err(TaskError::NotPermitted));
}

#[test]
fn a_live_child_is_one_not_ended_that_the_wait_names() {
    let mut t = Tasks::new(INIT, 16);
    assert!(!t.has_live_child(INIT, Which::Any));
    let a = fork(&mut t, 1);
    let b = fork(&mut t, 2);
    assert!(t.has_live_child(INIT, Which::Any));
    assert!(t.has_live_child(INIT, Which::Pid(a)));
    assert!(t.has_live_child(INIT, Which::Group(INIT)));
    assert!(!t.has_live_child(INIT, Which::Group(a)));
    t.exit(a, ExitKind::Exited(0));
    // A zombie is not live; b still is.
    assert!(!t.has_live_child(INIT, Which::Pid(a)));
    assert!(t.has_live_child(INIT, Which::Any));
    t.exit(b, ExitKind::Exited(0));
    assert!(!t.has_live_child(INIT, Which::Any));
    // Not a child of its own.
    assert!(!t.has_live_child(a, Which::Any));
}

#[test]
fn a_woken_sleeper_is_ready_at_once_and_nothing_else_wakes() {
    let mut t = Tasks::new(INIT, 16);
    let a = fork(&mut t, 1);
    let b = fork(&mut t, 2);
    let later = Instant::now() + Duration::from_secs(60);
    run(&mut t, a);
    t.park(State::Sleeping { saved: a, until: later });
    assert!(t.resume(b).is_some());
    assert_eq!(t.pick_next(Instant::now()), Some(INIT));
    assert!(t.wake(a));
    assert!(matches!(t.get(a).map(|x| &x.state), Some(State::Ready(_))));
    // Not asleep: the running one, a ready one, an unknown pid.
    assert!(!t.wake(b));
    assert!(!t.wake(a));
    assert!(!t.wake(9999));
}
