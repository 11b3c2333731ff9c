//! Links the `vmm` binary with its functions in the order the common runs
//! first execute them (`link-order/order.txt`, made by
//! `link-order/regen.sh`): the code a launch runs then sits in a few
//! hundred contiguous KiB instead of being spread over the whole 5 MiB
//! text, so the kernel maps (and the process holds resident) only those
//! pages. `vmm bench --only launch` measures the effect
//! (`docs/benchmarks.md`, "Link order").
//!
//! The order is a hint: a name the file lists that the binary no longer
//! has is ignored (`--no-warn-symbol-ordering`), and a function it does
//! not list is placed after the listed ones, as before. It is passed only
//! where the linker is known to take it: x86-64 Linux (glibc) with rustc
//! 1.90 or later, whose default linker there is the bundled LLD.
//! `VMM_LINK_ORDER=0` turns it off (for a toolchain set up with another
//! linker).

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link-order/order.txt");
    println!("cargo:rerun-if-env-changed=VMM_LINK_ORDER");
    if env::var("VMM_LINK_ORDER").is_ok_and(|v| v == "0") {
        return;
    }
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") || !rustc_links_with_lld() {
        return;
    }
    let Ok(dir) = env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let order = format!("{dir}/link-order/order.txt");
    println!("cargo:rustc-link-arg-bin=vmm=-Wl,--symbol-ordering-file={order}");
    println!("cargo:rustc-link-arg-bin=vmm=-Wl,--no-warn-symbol-ordering");
}

/// Whether the compiler is rustc 1.90 or later (its default linker on
/// x86_64-unknown-linux-gnu is the bundled `rust-lld`).
fn rustc_links_with_lld() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-V").output() else {
        return false;
    };
    let version = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let mut parts = version.split_whitespace().nth(1).unwrap_or("").split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (1, 90)
}
