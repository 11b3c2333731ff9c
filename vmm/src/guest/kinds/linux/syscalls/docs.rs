//! `docs/linux-syscalls.md`, generated from the table.

use std::fmt::Write as _;

use super::ctx::Status;
use super::table::TABLE;

/// The page, from [`TABLE`].
pub fn markdown() -> String {
    let mut rows: Vec<_> = TABLE.iter().collect();
    rows.sort_by_key(|e| e.nr);
    let count = |s: Status| rows.iter().filter(|e| e.status == s).count();
    let mut out = String::new();
    out.push_str("# Linux system calls served to `linux` guests\n\n");
    out.push_str(
        "Generated from the table in `vmm/src/guest/kinds/linux/syscalls/table.rs` \
         (regenerate: `VMM_BLESS=1 cargo test -p vmm --lib docs_match_the_table`; \
         a test fails when this page and the table differ).\n\n",
    );
    out.push_str(
        "A call not listed, or listed as not implemented, returns `-ENOSYS` and is counted \
         in the run's report; it never ends the run. Memory calls go through guest-mm.\n\n",
    );
    let _ = writeln!(
        out,
        "{} supported, {} partial, {} not implemented.\n",
        count(Status::Supported),
        count(Status::Partial),
        count(Status::Unimplemented)
    );
    out.push_str("| nr | call | status | note |\n|---:|---|---|---|\n");
    for e in rows {
        let status = match e.status {
            Status::Supported => "supported",
            Status::Partial => "partial",
            Status::Unimplemented => "ENOSYS",
        };
        let _ = writeln!(out, "| {} | `{}` | {} | {} |", e.nr, e.name, status, e.note.replace('|', "\\|"));
    }
    out
}
