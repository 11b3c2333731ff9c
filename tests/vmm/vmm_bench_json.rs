//! `vmm bench --quick --json`: the report is complete and well-formed.
//! Speed is not checked here (that is what the report is for); shape,
//! consistency and the presence of every figure of the suite are.

use serde_json::Value;
use vmm_suite::kvm::{run_vmm, temp_path};

/// Figure ids of the host-side items (1–4, 10), always present.
const HOST_IDS: &[&str] = &[
    "map_kernel_pages.vs_floor",
    "map_kernel_pages.vs_per_page_calls",
    "map_kernel_pages.vs_insert_page_each",
    "map_kernel_pages.vs_x86_64",
    "map_kernel_pages.vs_host_kernel",
    "map_kernel_pages.cold_vs_floor",
    "map_kernel_pages.cold_vs_x86_64",
    "map_kernel_pages.pin_array",
    "map_kernel_pages.unpin_array",
    "munmap.whole_range",
    "munmap.vs_map_per_page",
    "sweep.batch_1",
    "sweep.batch_8",
    "sweep.batch_64",
    "sweep.batch_512",
    "sweep.batch_4096",
    "remap.aligned_2m",
    "remap.aligned_64m",
    "remap.aligned_1g",
    "remap.offset_2m",
    "remap.offset_64m",
    "remap.offset_1g",
    "remap.skewed_1g",
    "vma_scaling.mmap",
    "vma_scaling.munmap",
    "vma_scaling.mprotect",
    "vma_scaling.lookup",
    "vma_scaling.lookup_spread",
    "vma_scaling.mmap_vs_host",
    "vma_scaling.munmap_vs_host",
];

/// Figure ids of the guest-side items (5–9, 11, 12), present when KVM is.
const GUEST_IDS: &[&str] = &[
    "guest_read.vs_host",
    "first_touch.vs_second_pass",
    "mmio.trapped_vs_bare_exit",
    "mmio.ioeventfd_vs_trapped",
    "mmio.passthrough_vs_ram",
    "hypercall.mmap_munmap_1page",
    "hypercall.mmap_munmap_1page_populated",
    "hypercall.mmap_touch_munmap_1page",
    "fault.lazy_touch_64mib",
    "fault.round_trip",
    "launch.wall_time",
    "launch.rss_beyond_guest",
    "launch.minimal_vs_qemu",
    "launch.minimal_rss_whole",
    "linux.syscall_round_trip",
    "linux.lazy_write_touch_64mib",
    "linux.rss_beyond_touched_64m",
    "linux.rss_beyond_touched_3584m",
];

/// Item 12's figure that needs Debian's static busybox at `/bin/busybox`
/// (skipped with a message where it is absent).
const BUSYBOX_ID: &str = "linux.busybox_sort";

fn have_busybox() -> bool {
    std::fs::read("/bin/busybox").is_ok_and(|b| b.starts_with(b"\x7fELF") && b.get(4) == Some(&2))
}

const UNITS: &[&str] = &["ns_per_page", "ns", "us", "ms", "gib_per_s", "mib"];

fn num(v: &Value, what: &str) -> f64 {
    let n = v.as_f64().unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(n.is_finite(), "{what} is not finite");
    n
}

/// Checks a `{median, min, max, reps}` statistic against its samples.
fn check_stat(stat: &Value, samples: Option<&Value>, reps: u64, what: &str) {
    let (med, min, max) = (num(&stat["median"], what), num(&stat["min"], what), num(&stat["max"], what));
    assert!(min <= med && med <= max, "{what}: min {min} median {med} max {max}");
    assert_eq!(stat["reps"].as_u64(), Some(reps), "{what}: repetitions");
    if let Some(s) = samples {
        let s: Vec<f64> =
            s.as_array().unwrap_or_else(|| panic!("{what}: samples")).iter().map(|v| num(v, what)).collect();
        assert_eq!(s.len() as u64, reps, "{what}: one sample per repetition");
        let lo = s.iter().copied().fold(f64::MAX, f64::min);
        let hi = s.iter().copied().fold(f64::MIN, f64::max);
        assert_eq!((lo, hi), (min, max), "{what}: min/max are the samples'");
        assert!(lo >= 0.0, "{what}: negative measurement");
    }
}

#[test]
fn quick_json_report_is_complete_and_well_formed() {
    let kvm = vmm_suite::kvm::kvm_available();
    if !kvm {
        // Without KVM the guest items must be reported as skipped; with
        // VMM_REQUIRE_KVM=1 this is a failure instead.
        vmm_suite::kvm::require_kvm(module_path!());
    }
    let json_path = temp_path("bench.json");
    let svg_path = temp_path("bench.svg");
    let run = run_vmm(&[
        "bench",
        "--quick",
        "--no-progress",
        "--json",
        json_path.to_str().unwrap(),
        "--plot",
        svg_path.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "vmm bench failed:\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("targets:"), "no target summary in the table:\n{}", run.stdout);
    let text = std::fs::read_to_string(&json_path).expect("JSON report written");
    let r: Value = serde_json::from_str(&text).expect("JSON report parses");

    assert_eq!(r["schema"], 1);
    assert_eq!(r["quick"], true);
    let reps = r["reps"].as_u64().expect("reps");
    assert!(reps >= 1);
    assert!(num(&r["wall_seconds"], "wall_seconds") > 0.0);
    let m = &r["machine"];
    assert!(!m["cpu_model"].as_str().expect("cpu_model").is_empty());
    assert!(m["cpus"].as_u64().expect("cpus") >= 1);
    assert_eq!(m["kvm"]["available"].as_bool(), Some(kvm), "usable /dev/kvm");
    assert_eq!(r["parts"], "all");
    assert_eq!(r["errors"].as_array().map(Vec::len), Some(0), "errors: {}", r["errors"]);
    assert!(!m["kvm"]["description"].as_str().expect("kvm description").is_empty());

    let figures = r["figures"].as_array().expect("figures");
    let ids: Vec<&str> = figures.iter().map(|f| f["id"].as_str().expect("figure id")).collect();
    let mut want: Vec<&str> = HOST_IDS.to_vec();
    if kvm {
        // The munmap with the VMM's TLB shootdown needs a VM.
        want.extend(["munmap.with_shootdown", "munmap.shootdown_only"]);
        want.extend(GUEST_IDS);
        if have_busybox() {
            want.push(BUSYBOX_ID);
        }
    }
    for id in &want {
        assert!(ids.contains(id), "figure {id} missing; have {ids:?}");
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "duplicate figure ids");

    let mut targets = 0;
    let mut met = 0;
    for f in figures {
        let id = f["id"].as_str().unwrap();
        let item = f["item"].as_u64().expect("item");
        assert!((1..=12).contains(&item), "{id}: item {item}");
        assert!(!f["title"].as_str().expect("title").is_empty());
        assert!(UNITS.contains(&f["unit"].as_str().expect("unit")), "{id}: unit {}", f["unit"]);
        // Every figure has one sample per repetition.
        check_stat(&f["ours"], Some(&f["samples"]), reps, id);
        match (&f["peer"], &f["ratio"]) {
            (Value::Null, Value::Null) => {}
            (p, q) if !p.is_null() && !q.is_null() => {
                assert!(!p["name"].as_str().expect("peer name").is_empty());
                check_stat(&p["value"], Some(&p["samples"]), reps, &format!("{id} peer"));
                let kind = q["kind"].as_str().expect("ratio kind");
                assert!(["speedup", "times", "fraction", "overhead"].contains(&kind), "{id}: {kind}");
                // Overhead may be negative; its stat is still ordered.
                let v = &q["value"];
                let (lo, med, hi) = (num(&v["min"], id), num(&v["median"], id), num(&v["max"], id));
                assert!(lo <= med && med <= hi, "{id}: ratio not ordered");
            }
            _ => panic!("{id}: a peer without a ratio or a ratio without a peer"),
        }
        for (k, v) in f["details"].as_object().expect("details") {
            num(v, &format!("{id} detail {k}"));
        }
        for t in f["targets"].as_array().expect("targets") {
            targets += 1;
            assert!(!t["text"].as_str().expect("target text").is_empty());
            if t["met"].as_bool().expect("met") {
                met += 1;
            }
        }
    }
    // The remap counts are what the targets say they are.
    for f in figures.iter().filter(|f| f["id"].as_str().unwrap().starts_with("remap.")) {
        let d = &f["details"];
        for k in ["entries_written", "entries_minimum", "tables_allocated", "tables_minimum"] {
            num(&d[k], k);
        }
    }
    let t = &r["targets"];
    assert_eq!(t["checked"].as_u64(), Some(targets));
    assert_eq!(t["met"].as_u64(), Some(met));
    assert_eq!(t["missed"].as_array().expect("missed").len() as u64, targets - met);

    let skipped: Vec<u64> =
        r["skipped"].as_array().expect("skipped").iter().map(|s| s["item"].as_u64().expect("item")).collect();
    if kvm {
        // Only busybox sort may be missing (item 12 keeps its other figures).
        let want: &[u64] = if have_busybox() { &[] } else { &[12] };
        assert_eq!(skipped, want, "skipped with KVM: {}", r["skipped"]);
    } else {
        assert_eq!(skipped, [5, 6, 7, 8, 9, 11, 12]);
    }

    let svg = std::fs::read_to_string(&svg_path).expect("chart written");
    assert!(svg.contains("<svg") && svg.contains("pages per call"), "not the chart");
    let _ = std::fs::remove_file(json_path);
    let _ = std::fs::remove_file(svg_path);
}

#[test]
fn bad_arguments_fail_before_measuring() {
    let run = run_vmm(&["bench", "--reps", "0"]);
    assert_eq!(run.code, 2, "clap rejects --reps 0: {}", run.stderr);
    let run = run_vmm(&["bench", "--json", "/nonexistent-dir/report.json"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("cannot write /nonexistent-dir/report.json"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "measured anyway:\n{}", run.stdout);
    let run = run_vmm(&["bench", "--only", "nowhere"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    // The chart needs the host items: refused up front, no file left.
    let svg = temp_path("guest-only.svg");
    let run = run_vmm(&["bench", "--only", "guest", "--plot", svg.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--only guest"), "{}", run.stderr);
    assert!(!svg.exists(), "an empty chart file was left behind");
}

#[test]
fn host_only_report_says_what_did_not_run() {
    let json_path = temp_path("host-only.json");
    let run =
        run_vmm(&["bench", "--only", "host", "--reps", "1", "--no-progress", "--json", json_path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).expect("report")).expect("JSON");
    assert_eq!(r["parts"], "host");
    let skipped: Vec<u64> =
        r["skipped"].as_array().expect("skipped").iter().map(|s| s["item"].as_u64().unwrap()).collect();
    assert_eq!(skipped, [5, 6, 7, 8, 9, 11, 12]);
    assert!(r["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .all(|f| matches!(f["item"].as_u64().unwrap(), 1..=4 | 10)));
    let _ = std::fs::remove_file(json_path);
}

#[test]
fn linux_only_report_has_item_12_with_its_counts() {
    vmm_suite::need_kvm!();
    let json_path = temp_path("linux-only.json");
    let run =
        run_vmm(&["bench", "--only", "linux", "--reps", "1", "--no-progress", "--json", json_path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).expect("report")).expect("JSON");
    assert_eq!(r["parts"], "linux");
    assert_eq!(r["errors"].as_array().map(Vec::len), Some(0), "errors: {}", r["errors"]);
    let figures = r["figures"].as_array().expect("figures");
    assert!(figures.iter().all(|f| f["item"].as_u64() == Some(12)));
    let by_id = |id: &str| figures.iter().find(|f| f["id"] == id).unwrap_or_else(|| panic!("no {id}"));
    // Every figure is checked against its target, and names the backend
    // where its cost is the backend's.
    let backend = r["machine"]["kvm"]["description"].as_str().expect("backend").to_string();
    for id in ["linux.syscall_round_trip", "linux.lazy_write_touch_64mib"] {
        let f = by_id(id);
        assert_eq!(f["targets"].as_array().map(Vec::len), Some(1), "{id}");
        assert!(f["note"].as_str().expect("note").contains(&backend), "{id}: {}", f["note"]);
    }
    // The lazy pass faulted once per page (the Linux kind maps one page
    // per anonymous fault), the populated one not at all.
    let d = &by_id("linux.lazy_write_touch_64mib")["details"];
    assert_eq!(d["lazy_faults"], d["pages"]);
    assert_eq!(d["eager_faults"].as_f64(), Some(0.0));
    for mem in ["64m", "3584m"] {
        let f = by_id(&format!("linux.rss_beyond_touched_{mem}"));
        let ours = num(&f["ours"]["median"], mem);
        assert!(ours > 0.0, "{mem}: the VMM holds nothing beyond the touched pages?");
        assert!(num(&f["details"]["vm_hwm_mib"], mem) > num(&f["details"]["touched_mib"], mem));
    }
    if have_busybox() {
        let d = &by_id(BUSYBOX_ID)["details"];
        let (exits, calls, faults) =
            (num(&d["exits"], "exits"), num(&d["syscalls"], "calls"), num(&d["page_faults"], "f"));
        assert!(calls > 0.0 && faults > 0.0 && exits >= calls + faults, "{d}");
    } else {
        let skipped = r["skipped"].to_string();
        assert!(skipped.contains("busybox"), "{skipped}");
    }
    // The fork program (built with gcc where there is one): fork and the
    // first writes after it, each beside the host's own, the fork
    // checked against its target; both name the backend.
    if figures.iter().any(|f| f["id"] == "linux.fork_64mib_touched") {
        for id in ["linux.fork_64mib_touched", "linux.first_write_after_fork"] {
            let f = by_id(id);
            assert!(num(&f["ours"]["median"], id) > 0.0 && num(&f["peer"]["value"]["median"], id) > 0.0, "{id}");
            assert!(f["note"].as_str().expect("note").contains(&backend), "{id}: {}", f["note"]);
        }
        assert_eq!(by_id("linux.fork_64mib_touched")["targets"].as_array().map(Vec::len), Some(1));
    } else {
        let skipped = r["skipped"].to_string();
        assert!(skipped.contains("fork: "), "{skipped}");
    }
    // The two computing threads: on two vCPUs beside the host, with the
    // one-vCPU time and the speed-up as details (the speed-up is a
    // figure, not checked here: no timing in tests).
    if let Some(f) = figures.iter().find(|f| f["id"] == "linux.two_threads_two_vcpus") {
        let d = &f["details"];
        let (two, one) = (num(&f["ours"]["median"], "two"), num(&d["one_vcpu_ms_median"], "one"));
        assert!(two > 0.0 && one > 0.0 && num(&f["peer"]["value"]["median"], "host") > 0.0, "{f}");
        assert!(f["note"].as_str().expect("note").contains(&backend), "{}", f["note"]);
        assert!(num(&d["speedup_over_one_vcpu_median"], "speedup") > 0.0, "{d}");
    } else {
        let skipped = r["skipped"].to_string();
        assert!(skipped.contains("parallel threads: "), "{skipped}");
    }
    let _ = std::fs::remove_file(json_path);
}

#[test]
fn launch_only_report_has_the_solo5_figures() {
    vmm_suite::need_kvm!();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testguests/solo5-spt");
    let hello = dir.join("test_hello.spt");
    if !hello.is_file() {
        eprintln!("SKIPPED: no {}", hello.display());
        return;
    }
    let json_path = temp_path("launch-only.json");
    let (json, spt) = (json_path.to_str().unwrap(), hello.to_str().unwrap());
    let run = run_vmm(&["bench", "--only", "launch", "--reps", "1", "--no-progress", "--spt", spt, "--json", json]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).expect("report")).expect("JSON");
    assert_eq!(r["parts"], "launch");
    let figures = r["figures"].as_array().expect("figures");
    assert!(figures.iter().all(|f| f["item"].as_u64() == Some(9)));
    let by_id = |id: &str| figures.iter().find(|f| f["id"] == id).unwrap_or_else(|| panic!("no {id}"));
    // Resident memory does not follow --mem: both sizes sampled, both real.
    let f = by_id("launch.solo5_rss_2048m");
    let (big, small) = (num(&f["ours"]["median"], "2048m"), num(&f["peer"]["value"]["median"], "2m"));
    assert!(small > 1.0 && big > 1.0, "{f}");
    assert!(big < small * 1.1, "resident memory grows with --mem: {big} MiB at 2 GiB, {small} MiB at 2 MiB");
    // The peers run where Solo5's tenders are installed, and only there.
    let hvt = by_id("launch.solo5_vs_hvt");
    if dir.join("tenders/solo5-hvt").is_file() && dir.join("tenders/test_hello.hvt").is_file() {
        assert!(num(&hvt["peer"]["value"]["median"], "hvt") > 0.0, "{hvt}");
        assert!(num(&by_id("launch.solo5_vs_spt")["peer"]["value"]["median"], "spt") > 0.0);
        // Peak resident memory beside solo5-spt's, both sampled, with its
        // target.
        let rss = by_id("launch.solo5_rss_vs_spt");
        assert!(num(&rss["ours"]["median"], "rss") > 1.0 && num(&rss["peer"]["value"]["median"], "rss spt") > 0.1);
        assert_eq!(rss["targets"].as_array().map(Vec::len), Some(1), "{rss}");
    } else {
        assert!(hvt["note"].as_str().expect("note").contains("not found"), "{hvt}");
    }
    // test_blk beside it: block I/O against solo5-spt where installed.
    if dir.join("test_blk.spt").is_file() {
        let blk = by_id("launch.solo5_blk_vs_spt");
        assert!(num(&blk["ours"]["median"], "blk") > 0.0, "{blk}");
        if dir.join("tenders/solo5-spt").is_file() {
            assert!(num(&blk["peer"]["value"]["median"], "blk spt") > 0.0, "{blk}");
        }
    }
    // The floor is a real KVM launch of its own, with CPU time counted.
    assert!(num(&by_id("launch.minimal_vs_floor")["peer"]["value"]["median"], "floor") > 0.0);
    let floor = by_id("launch.solo5_vs_floor");
    assert!(num(&floor["peer"]["value"]["median"], "floor") > 0.0, "{floor}");
    assert!(num(&floor["ours"]["median"], "ours") > 0.0, "{floor}");
    let _ = std::fs::remove_file(json_path);
}
