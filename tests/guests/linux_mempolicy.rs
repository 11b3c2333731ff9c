//! Scenario: NUMA memory policy calls (`mbind`, `get_mempolicy`,
//! `set_mempolicy`) as a static C program (`tests/guests/linux/mempolicy.c`,
//! built here with `gcc -static`) sees them under `vmm run`, with the
//! production seccomp filters: Linux's argument checks in Linux's order,
//! holes, VMAs split and merged by policy (counted in `/proc/self/maps`),
//! what `get_mempolicy` reports, and a page moved by `MPOL_MF_MOVE` that
//! keeps its contents and stays read-only. The output must be what Linux
//! prints on a machine with one memory node, and what the host prints
//! where it runs the program.

use vmm_suite::kvm::linux::{run_on_host, static_c_program};
use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// What the program prints on Linux 6.12 with one memory node.
const LINUX: &str = "\
bad mode: -1 Invalid argument
static+relative: -1 Invalid argument
bad flags: -1 Invalid argument
misaligned: -1 Invalid argument
default with nodes: -1 Invalid argument
local with nodes: -1 Invalid argument
bind no nodes: -1 Invalid argument
bind node 1: -1 Invalid argument
mask fault: -1 Bad address
maxnode huge: -1 Invalid argument
bit past max: -1 Invalid argument
long clean mask: 0
zero length: 0
hole bind: -1 Bad address
hole default: 0
all hole default: -1 Bad address
bind middle: 0
vmas: 4
bind wider: 0
vmas: 2
default all: 0
vmas: 1
get addr: 0
mode 0x8003 mask 1 0 0
get addr default: 0
mode 0 mask 0
get addr hole: -1 Bad address
get addr no flag: -1 Invalid argument
get node addr: 0
node 0
get node: -1 Invalid argument
get maxnode 0: -1 Invalid argument
get allowed: 0
mode 0 mask 1
get allowed+addr: -1 Invalid argument
get bad flag: -1 Invalid argument
get task: 0
mode 0
set interleave: 0
get task: 0
mode 3 mask 1
get node: 0
node 0
set preferred empty: 0
get task: 0
mode 4
set bad: -1 Invalid argument
set default: 0
strict local: -1 Input/output error
strict bind: 0
move local: 0
move all: 0
byte 0x5a
store: SIGSEGV
byte 0x5a
";

#[test]
fn memory_policies_behave_as_on_linux_with_one_node() {
    need_kvm!();
    let Some(p) = static_c_program("mempolicy") else { return };
    let prog = p.to_str().expect("utf-8");
    let r = run_vmm(&["run", "--timeout", "60", "--guest", prog]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, LINUX, "stderr:\n{}", r.stderr);
    // The host's own run, where it has one memory node as the guest does.
    let one_node = std::fs::read_to_string("/sys/devices/system/node/online").is_ok_and(|s| s.trim() == "0");
    if one_node {
        let (host, code) = run_on_host(&p, &[]);
        assert_eq!((host.as_str(), code), (LINUX, 0), "the host's own run");
    }
}
