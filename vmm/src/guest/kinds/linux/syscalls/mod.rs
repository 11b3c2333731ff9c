//! The Linux system-call table: number → handler, status and note, in
//! code ([`table::TABLE`]). `docs/linux-syscalls.md` is generated from it
//! ([`docs::markdown`]; a test fails when the two differ), as gVisor
//! generates its syscall docs.
//!
//! A call not in the table, or in it as [`Status::Unimplemented`],
//! returns `-ENOSYS` and is counted for the report; it never ends the run.
//! Every pointer argument is copied through the guest's page tables
//! (`EFAULT` for what the program could not touch itself), and every
//! length is bounded before anything is allocated on the host.

mod ctx;
mod docs;
mod file_map;
mod futex;
mod huge_memfd;
mod io;
mod iov;
mod ipc;
mod itimer;
mod mempolicy;
mod mm;
mod pipes;
mod poll;
mod prctl;
mod process;
mod procs;
mod sockets;
mod table;
mod time;
mod uffd;
mod wait;
mod waitid;

pub use self::ctx::{ret, Ctx, Entry, Handler, Status, RESTART};
pub use self::docs::markdown;
pub use self::futex::{key_in as futex_key_in, key_of as futex_key};
pub use self::process::PID;
pub use self::table::TABLE;

use super::process::Linux;
use crate::hosted::hypercall::{Args, HostedKernel, Outcome};

/// The highest system-call number the table can hold.
pub const NR_MAX: u64 = 512;

/// Handlers by number, built once from [`TABLE`].
fn index() -> &'static [Option<&'static Entry>] {
    static INDEX: std::sync::OnceLock<Vec<Option<&'static Entry>>> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let mut v: Vec<Option<&'static Entry>> = vec![None; NR_MAX as usize];
        for e in TABLE {
            if let Some(slot) = v.get_mut(e.nr as usize) {
                *slot = Some(e);
            }
        }
        v
    })
}

/// The table's row for `nr`.
pub fn entry(nr: u64) -> Option<&'static Entry> {
    index().get(usize::try_from(nr).ok()?).copied().flatten()
}

/// Serves system call `args` for the process `linux`.
pub fn dispatch(hv: &HostedKernel, vcpu: u8, linux: &Linux, args: &Args) -> Outcome {
    let ctx = Ctx { hv, vcpu, linux };
    match entry(args.nr).and_then(|e| e.handler.map(|h| (e, h))) {
        Some((e, h)) => {
            let mut out = h(&ctx, args.a);
            if let Some(msg) = linux.take_fatal() {
                out.effects.fatal.get_or_insert(msg);
            }
            // A call that shrank a file clears the dropped pages from its
            // mappings before the program runs again.
            if let Some(fatal) = super::file_pages::apply(hv, vcpu, linux) {
                out.effects.fatal.get_or_insert(fatal);
            }
            log::trace!("linux: {}({:#x?}) = {:#x}", e.name, args.a, out.ret);
            out
        }
        None => {
            linux.count_enosys(args.nr);
            log::debug!("linux: system call {} ({}) not implemented: ENOSYS", args.nr, name_of(args.nr));
            Outcome::err(libc::ENOSYS)
        }
    }
}

/// The name of call `nr`, or "unknown".
pub fn name_of(nr: u64) -> &'static str {
    entry(nr).map_or("unknown", |e| e.name)
}

#[cfg(test)]
mod ipc_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_each_number_once_and_handlers_match_status() {
        let mut seen = std::collections::BTreeSet::new();
        for e in TABLE {
            assert!(e.nr < NR_MAX, "{} {}", e.name, e.nr);
            assert!(seen.insert(e.nr), "{} ({}) is in the table twice", e.name, e.nr);
            assert_eq!(e.handler.is_some(), e.status != Status::Unimplemented, "{}", e.name);
            if e.status == Status::Partial {
                assert!(!e.note.is_empty(), "{}: a partial call says what is missing", e.name);
            }
        }
        // Numbers are Linux's (spot checks against libc's).
        for (name, nr) in [("mmap", libc::SYS_mmap), ("exit_group", libc::SYS_exit_group), ("brk", libc::SYS_brk)] {
            assert_eq!(entry(nr as u64).map(|e| e.name), Some(name));
        }
    }

    #[test]
    fn docs_match_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/linux-syscalls.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if std::env::var_os("VMM_BLESS").is_some() {
            std::fs::write(&path, markdown()).expect("write docs/linux-syscalls.md");
            return;
        }
        assert!(
            on_disk == markdown(),
            "docs/linux-syscalls.md differs from the table: regenerate it with \
             `VMM_BLESS=1 cargo test -p vmm --lib docs_match_the_table`"
        );
    }
}
