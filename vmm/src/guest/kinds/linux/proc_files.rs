//! The `/proc` and `/sys` files a Linux program reads about itself,
//! registered in the file layer at start. Their contents come from the
//! address space as it is when the file is opened: the syscall layer
//! asks [`ProcFiles::refresh`] before every `open`, which renders the
//! file named (only that one) into a cell the file's callback reads.
//! `/proc/self/pagemap` is served by the kind at the offset read
//! ([`ProcFiles::pagemap`]): it is never rendered whole.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use guest_mm::GuestVirtAddr;

use super::fs::{Errno, Special, Vfs};
use super::image::TASK_SIZE;
use crate::hosted::hypercall::HostedKernel;

/// Tag of `/proc/self/pagemap` ([`Special::Tag`]).
pub const PAGEMAP: u32 = 1;

/// Files rendered at open, by path.
type Cell = Arc<Mutex<BTreeMap<&'static str, Vec<u8>>>>;

/// The generated files of one process.
#[derive(Default)]
pub struct ProcFiles {
    cell: Cell,
}

/// The files rendered from the address space.
const RENDERED: &[&str] = &["/proc/self/maps", "/proc/self/smaps", "/proc/self/status"];

/// Files whose contents never change: `(path, contents)`.
const FIXED: &[(&str, &str)] = &[
    ("/proc/sys/vm/mmap_min_addr", "65536\n"),
    ("/proc/sys/vm/max_map_count", "65530\n"),
    ("/proc/sys/vm/overcommit_memory", "0\n"),
    ("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "0\n"),
    ("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "0\n"),
    ("/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages", "0\n"),
    ("/sys/kernel/mm/hugepages/hugepages-2048kB/surplus_hugepages", "0\n"),
];

impl ProcFiles {
    /// Registers every file in `vfs`.
    pub fn register(&self, vfs: &mut Vfs) -> Result<(), Errno> {
        for &path in RENDERED {
            let cell = self.cell.clone();
            vfs.register_synthetic(path, move || {
                cell.lock().unwrap_or_else(|e| e.into_inner()).get(path).cloned().unwrap_or_default()
            })?;
        }
        for &(path, text) in FIXED {
            vfs.register_synthetic(path, move || text.as_bytes().to_vec())?;
        }
        vfs.register_special("/proc/self/pagemap", Special::Tag(PAGEMAP), 0o100444)?;
        Ok(())
    }

    /// Renders the file `path` names, if it is one of the generated ones,
    /// from the address space as it is now.
    pub fn refresh(&self, hv: &HostedKernel, path: &[u8], view: &View<'_>) {
        let Some(&name) = RENDERED.iter().find(|p| p.as_bytes() == path) else { return };
        let text = match name {
            "/proc/self/maps" => render_maps(hv, view),
            _ => Vec::new(),
        };
        self.cell.lock().unwrap_or_else(|e| e.into_inner()).insert(name, text);
    }

    /// `len` bytes of `/proc/self/pagemap` at `offset`: 8 bytes per page,
    /// bit 63 set where a page is present (frame numbers hidden, as
    /// Linux shows them to an unprivileged reader).
    pub fn pagemap(&self, hv: &HostedKernel, offset: u64, len: usize) -> Vec<u8> {
        let first = offset / 8;
        let count = (len / 8) as u64;
        let m = hv.mapper();
        let mut out = Vec::with_capacity(len);
        for page in first..first.saturating_add(count) {
            let va = page << 12;
            if va >= TASK_SIZE {
                break;
            }
            let present = GuestVirtAddr::try_new(va)
                .ok()
                .and_then(|v| m.page_tables().translate(v))
                .is_some_and(|t| t.prot.present);
            let entry: u64 = if present { (1 << 63) | (1 << 56) } else { 0 };
            out.extend_from_slice(&entry.to_le_bytes());
        }
        out
    }
}

/// What the rendering needs to know about the process.
pub struct View<'a> {
    /// The program's absolute path.
    pub exe: &'a str,
    /// The lowest page of the program image.
    pub image_base: u64,
}

/// `/proc/self/maps` in Linux's format.
fn render_maps(hv: &HostedKernel, view: &View<'_>) -> Vec<u8> {
    use std::fmt::Write as _;
    let m = hv.mapper();
    let space = m.space();
    let mut out = String::new();
    for v in space.vmas() {
        let (start, end) = (v.start().raw(), v.end());
        if end > TASK_SIZE {
            continue;
        }
        let f = v.flags();
        use guest_mm::VmFlags as F;
        let perms: String = [
            if f.contains(F::READ) { 'r' } else { '-' },
            if f.contains(F::WRITE) { 'w' } else { '-' },
            if f.contains(F::EXEC) { 'x' } else { '-' },
            if f.contains(F::MAYSHARE) || f.contains(F::SHARED) { 's' } else { 'p' },
        ]
        .iter()
        .collect();
        let (name, off) = match v.provider_name() {
            "image" => (view.exe.to_string(), start - view.image_base),
            "[stack]" => ("[stack]".to_string(), 0),
            _ if space.is_heap(v) => ("[heap]".to_string(), 0),
            n if n.starts_with("memfd:") => (format!("/{n} (deleted)"), v.pgoff() << 12),
            _ => (String::new(), 0),
        };
        let line = format!("{start:08x}-{end:08x} {perms} {off:08x} 00:00 0 ");
        out.push_str(&line);
        if !name.is_empty() {
            let pad = 73usize.saturating_sub(line.len());
            let _ = write!(out, "{:pad$}{name}", "");
        }
        out.push('\n');
    }
    out.into_bytes()
}
