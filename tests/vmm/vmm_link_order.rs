//! The `vmm` binary's link order (`vmm/cli/build.rs`,
//! `vmm/cli/link-order/`): the build passes the order to the linker (the
//! functions it lists start the text, together), and the order still
//! names the binary's functions (a toolchain upgrade or a large rename
//! makes it stale: regenerate with `vmm/cli/link-order/regen.sh`).
//! What the order buys is measured by `vmm bench --only launch`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use vmm_suite::kvm::vmm_bin;

/// The order file, its recorded rustc version and the names it lists.
fn order() -> (String, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("vmm/cli/link-order/order.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rustc = text
        .lines()
        .find_map(|l| l.strip_prefix("# rustc "))
        .unwrap_or_else(|| panic!("{}: no `# rustc VERSION` line", path.display()))
        .to_string();
    let names =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    (rustc, names)
}

/// The binary's functions: name -> (address, size), from `nm -S`.
fn functions(bin: &Path) -> HashMap<String, (u64, u64)> {
    let out = Command::new("nm")
        .args(["-S", "--defined-only"])
        .arg(bin)
        .output()
        .unwrap_or_else(|e| panic!("nm (binutils, installed with gcc): {e}"));
    assert!(out.status.success(), "nm {}: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
    let mut f = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let p: Vec<&str> = line.split_whitespace().collect();
        if let [addr, size, kind, name] = p[..] {
            if matches!(kind, "t" | "T" | "w" | "W") {
                let (Ok(a), Ok(s)) = (u64::from_str_radix(addr, 16), u64::from_str_radix(size, 16)) else {
                    continue;
                };
                f.entry(name.to_string()).or_insert((a, s));
            }
        }
    }
    f
}

/// The rustc version the binary records in `.comment`
/// (`rustc version 1.95.0 (59807616e 2026-04-14)`).
fn built_by(bin: &Path) -> Option<String> {
    let bytes = std::fs::read(bin).ok()?;
    let key = b"rustc version ";
    let at = bytes.windows(key.len()).position(|w| w == key)? + key.len();
    let end = at + bytes[at..].iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&bytes[at..end]).into_owned())
}

/// Whether the build passes the order (`build.rs`'s conditions).
fn build_passes_order() -> bool {
    cfg!(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))
        && std::env::var("VMM_LINK_ORDER").map_or(true, |v| v != "0")
}

#[test]
fn the_listed_functions_start_the_text_together() {
    if !build_passes_order() {
        eprintln!("skipped: this build does not pass the link order (VMM_LINK_ORDER=0 or not x86_64 glibc Linux)");
        return;
    }
    let bin = vmm_bin();
    let funcs = functions(bin);
    let (_, names) = order();
    let text_start = funcs.values().map(|&(a, _)| a).min().expect("the binary has functions");
    // Each function once (aliases share an address).
    let listed: HashMap<u64, u64> = names.iter().filter_map(|n| funcs.get(n)).map(|&(a, s)| (a, s)).collect();
    assert!(listed.len() > 500, "only {} listed functions found in {}", listed.len(), bin.display());
    let bytes: u64 = listed.values().sum();
    // Placed together, they fill the text's first `bytes`; a glibc object
    // moves whole (with its unlisted neighbours), hence the slack. In the
    // default order they are spread over the whole text (5 MiB).
    let limit = text_start + bytes + bytes / 4;
    let inside = listed.keys().filter(|&&a| a < limit).count();
    assert!(
        inside * 100 >= listed.len() * 98,
        "{inside} of {} listed functions are in the text's first {} KiB: the order is not applied (vmm/cli/build.rs)",
        listed.len(),
        (limit - text_start) / 1024
    );
}

#[test]
fn the_order_names_the_binarys_functions() {
    let bin = vmm_bin();
    let (recorded, names) = order();
    let Some(built) = built_by(bin) else {
        panic!("{}: no `rustc version` in .comment", bin.display());
    };
    if built != recorded {
        eprintln!(
            "skipped: {} was built by rustc {built}, the order was made with rustc {recorded}; \
             its names may differ (run vmm/cli/link-order/regen.sh)",
            bin.display()
        );
        return;
    }
    let funcs = functions(bin);
    let found = names.iter().filter(|n| funcs.contains_key(n.as_str())).count();
    // Right after regen.sh every name is found; code changes rename a
    // few; a toolchain's new symbol hashes rename nearly all Rust ones.
    assert!(
        found * 100 >= names.len() * 75,
        "only {found} of the {} functions vmm/cli/link-order/order.txt lists are in {}: \
         regenerate it with vmm/cli/link-order/regen.sh",
        names.len(),
        bin.display()
    );
}
