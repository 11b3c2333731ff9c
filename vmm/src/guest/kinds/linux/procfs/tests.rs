//! Tests over a real address space (guest memory, guest-mm tables, no
//! KVM): golden maps lines, smaps counters checked against pages counted
//! by translating each page, status, pagemap bits, and the cost of a
//! 65,000-VMA space.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use guest_mm::VmFlags;

use super::test_util::*;
use super::*;
use crate::hosted::mapper::Access;

const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

/// `n` spaces.
fn sp(n: usize) -> String {
    " ".repeat(n)
}

/// The image (text split file/anonymous, data), heap, anonymous memory,
/// shared zero memory, a memfd, the stack and the trampoline.
fn process() -> Fixture {
    let mut f = Fixture::new();
    f.image(0x40_0000, 2, Access::RX, 0x2000);
    f.image(0x40_2000, 1, Access::RW, 0x2010);
    f.segments = vec![
        ImageSegment { start: va(0x40_0000), end: va(0x40_1000), offset: 0 },
        ImageSegment { start: va(0x40_2000), end: va(0x40_3000), offset: 0x1000 },
    ];
    let zero = f.zero.clone();
    f.mapper.space_mut().set_heap(va(0x50_0000), zero.clone()).unwrap();
    assert_eq!(f.mapper.space_mut().brk(0x50_2000).brk.raw(), 0x50_2000);
    f.anon(0x1000_0000, 16 << 12, RW);
    f.map(&*zero, 0x2000_0000, 2 << 12, VmFlags::READ, true);
    let memfd = Renamed { name: "memfd:foo", inner: zero.clone() };
    f.map(&memfd, 0x3000_0000, 1 << 12, RW, true);
    let stack = Renamed { name: "[stack]", inner: zero };
    f.map(&stack, 0x7fff_eff0_0000, 1 << 20, RW, false);
    f.image(TASK, 1, Access::RX, 0x2020);
    f
}

#[test]
fn maps_lines_are_linux_format_to_the_byte() {
    let f = process();
    let text = String::from_utf8(maps(&f.view())).unwrap();
    let want = [
        format!("00400000-00401000 r-xp 00000000 fe:01 1234{}/bin/prog", sp(31)),
        "00401000-00402000 r-xp 00000000 00:00 0 ".to_string(),
        format!("00402000-00403000 rw-p 00001000 fe:01 1234{}/bin/prog", sp(31)),
        format!("00500000-00502000 rw-p 00000000 00:00 0{}[heap]", sp(34)),
        "10000000-10010000 rw-p 00000000 00:00 0 ".to_string(),
        format!("20000000-20002000 r--s 00000000 00:01 0{}/dev/zero (deleted)", sp(34)),
        format!("30000000-30001000 rw-s 00000000 00:01 0{}/memfd:foo (deleted)", sp(34)),
        format!("7fffeff00000-7ffff0000000 rw-p 00000000 00:00 0{}[stack]", sp(26)),
    ];
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got, want, "\n{text}");
    assert!(text.ends_with('\n'));
    // Names start at column 73 (seq_pad to 72, then one space).
    for l in text.lines().filter(|l| l.len() > 72) {
        assert_eq!(&l[71..73], "  ", "{l}");
        assert_ne!(&l[73..74], " ", "{l}");
    }
}

#[test]
fn a_long_header_keeps_its_trailing_space_and_gets_one_more() {
    // The header's own trailing space, then `seq_pad`'s character even
    // when there is nothing to pad: two spaces.
    let mut out = Vec::new();
    let file = FileId { major: 0x103, minor: 0x1ff, ino: u64::MAX };
    super::maps::line(&mut out, 0x7fff_ffff_0000, 0x7fff_ffff_f000, RW, 0x1_0000_0000_0000, file, Some("/x"));
    let l = String::from_utf8(out).unwrap();
    assert_eq!(l, format!("7fffffff0000-7ffffffff000 rw-p 1000000000000 103:1ff {}  /x\n", u64::MAX));
}

#[test]
fn sealing_shows_in_vmflags_not_in_maps() {
    let mut f = process();
    let before = maps(&f.view());
    f.mapper.space_mut().mseal(va(0x1000_0000), 16 << 12, 0).unwrap();
    assert_eq!(maps(&f.view()), before);
    let s = String::from_utf8(smaps(&f.view())).unwrap();
    let entry = &s[s.find("10000000-10010000").unwrap()..];
    let flags = entry.lines().find(|l| l.starts_with("VmFlags:")).unwrap();
    assert_eq!(flags, "VmFlags: rd wr mr mw me sl ");
}

#[test]
fn smaps_counts_what_the_tables_map_and_mlock_locks() {
    let mut f = process();
    // A write maps fresh pages (with fault-around); a read of another
    // read-only VMA maps the zero page, which Linux does not count.
    f.touch(0x1000_0000, true);
    f.anon(0x1100_0000, 4 << 12, VmFlags::READ);
    f.touch(0x1100_0000, false);
    let s = String::from_utf8(smaps(&f.view())).unwrap();
    let written = f.counted_pages(0x1000_0000, 16 << 12) * 4;
    assert!(written > 0);
    let head = "10000000-10010000";
    assert_eq!(field(&s, head, "Size"), 64);
    assert_eq!(field(&s, head, "KernelPageSize"), 4);
    assert_eq!(field(&s, head, "Rss"), written);
    assert_eq!(field(&s, head, "Pss"), written);
    assert_eq!(field(&s, head, "Private_Dirty"), written);
    assert_eq!(field(&s, head, "Anonymous"), written);
    assert_eq!(field(&s, head, "Private_Clean"), 0);
    assert_eq!(field(&s, head, "Locked"), 0);
    let ro = "11000000-11004000";
    assert!(f.mapper.space().resident_pages(va(0x1100_0000), 4 << 12) > 0);
    assert_eq!(field(&s, ro, "Rss"), 0);
    // The image: file pages, clean (no Dirty bit without a CPU).
    assert_eq!(field(&s, "00400000-00401000", "Rss"), 4);
    assert_eq!(field(&s, "00400000-00401000", "Private_Clean"), 4);
    assert_eq!(field(&s, "00400000-00401000", "Anonymous"), 0);
    assert_eq!(field(&s, "00401000-00402000", "Anonymous"), 4);

    f.mapper.space_mut().mlock(va(0x1000_0000), 16 << 12, false).unwrap().ignore();
    let s = String::from_utf8(smaps(&f.view())).unwrap();
    assert_eq!(f.counted_pages(0x1000_0000, 16 << 12), 16);
    assert_eq!(field(&s, head, "Rss"), 64);
    assert_eq!(field(&s, head, "Locked"), 64);
    let entry = &s[s.find(head).unwrap()..];
    assert!(entry.lines().any(|l| l == "VmFlags: rd wr mr mw me lo "), "{entry}");

    // Field order and widths of one entry, exactly.
    let names: Vec<&str> = entry.lines().skip(1).take(25).map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "Size",
            "KernelPageSize",
            "MMUPageSize",
            "Rss",
            "Pss",
            "Pss_Dirty",
            "Shared_Clean",
            "Shared_Dirty",
            "Private_Clean",
            "Private_Dirty",
            "Referenced",
            "Anonymous",
            "KSM",
            "LazyFree",
            "AnonHugePages",
            "ShmemPmdMapped",
            "FilePmdMapped",
            "Shared_Hugetlb",
            "Private_Hugetlb",
            "Swap",
            "SwapPss",
            "Locked",
            "THPeligible",
            "VmFlags",
            "11000000-11004000 r--p 00000000 00"
        ]
    );
    assert!(entry.contains("\nSize:                 64 kB\n"));
    assert!(entry.contains("\nPrivate_Hugetlb:       0 kB\n"));
    assert!(entry.contains("\nTHPeligible:           0\n"));
}

#[test]
fn rollup_sums_every_line() {
    let mut f = process();
    f.mapper.space_mut().mlock(va(0x1000_0000), 16 << 12, false).unwrap().ignore();
    let r = String::from_utf8(smaps_rollup(&f.view())).unwrap();
    let first = r.lines().next().unwrap();
    assert_eq!(first, format!("00400000-7ffff0000000 ---p 00000000 00:00 0{}[rollup]", sp(30)));
    let s = String::from_utf8(smaps(&f.view())).unwrap();
    let sum = |name: &str| -> u64 {
        s.lines()
            .filter(|l| l.starts_with(&format!("{name}:")))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
            .sum()
    };
    for name in ["Rss", "Pss", "Private_Dirty", "Private_Clean", "Anonymous", "Locked"] {
        assert_eq!(field(&r, "[rollup]", name), sum(name), "{name}");
    }
    assert_eq!(field(&r, "[rollup]", "Locked"), 64);
    assert!(r.contains("\nPss_Anon:"));
    assert!(!r.contains("VmFlags"));
}

#[test]
fn status_memory_lines_follow_the_space() {
    let mut f = process();
    f.mapper.space_mut().mlock(va(0x1000_0000), 16 << 12, false).unwrap().ignore();
    let extra = StatusExtra { name: "prog\nx".into(), pid: 7, ppid: 1, ..Default::default() };
    let st = String::from_utf8(status(Some(&f.view()), &extra)).unwrap();
    let locked = f.mapper.space().locked_bytes();
    assert_eq!(locked, 64 << 10);
    assert_eq!(status_kb(&st, "VmLck"), locked >> 10);
    assert!(st.contains("\nVmLck:\t      64 kB\n"), "{st}");
    let smaps_rss: u64 = String::from_utf8(smaps(&f.view()))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("Rss:"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(status_kb(&st, "VmRSS"), smaps_rss);
    assert_eq!(
        status_kb(&st, "RssAnon") + status_kb(&st, "RssFile") + status_kb(&st, "RssShmem"),
        status_kb(&st, "VmRSS")
    );
    // Everything shown but the hidden trampoline page.
    let size: u64 = f.view().regions().iter().map(|r| r.size()).sum();
    assert_eq!(status_kb(&st, "VmSize"), size >> 10);
    assert_eq!(f.mapper.space().mapped_bytes() - size, 4096);
    assert_eq!(status_kb(&st, "VmStk"), 1024);
    assert_eq!(status_kb(&st, "VmExe"), 4);
    assert_eq!(status_kb(&st, "RssShmem"), 12);
    assert!(
        st.starts_with("Name:\tprog\\nx\nUmask:\t0022\nState:\tR (running)\nTgid:\t7\nNgid:\t0\nPid:\t7\nPPid:\t1\n")
    );
    assert!(st.contains("\nGroups:\t0 \nNStgid:\t7\n"));
    assert!(st.contains("\nCapEff:\t000001ffffffffff\n"));
    assert!(st.contains("\nCpus_allowed:\t1\nCpus_allowed_list:\t0\n"));
    assert!(st.ends_with("x86_Thread_features_locked:\t\n"));
}

#[test]
fn bitmaps_print_as_linux_prints_them() {
    use super::status::{bitmap_hex, bitmap_list};
    assert_eq!((bitmap_hex(1), bitmap_list(1)), ("1".to_string(), "0".to_string()));
    assert_eq!((bitmap_hex(4), bitmap_list(4)), ("f".to_string(), "0-3".to_string()));
    assert_eq!(bitmap_hex(32), "ffffffff");
    assert_eq!(bitmap_hex(33), "1,ffffffff");
    assert_eq!(bitmap_hex(40), "ff,ffffffff");
}

#[test]
fn vmflags_mnemonics_are_in_bit_order() {
    let bits: Vec<u32> = super::smaps::MNEMONICS.iter().map(|(f, _)| f.bits().trailing_zeros()).collect();
    assert!(bits.windows(2).all(|w| w[0] < w[1]), "{bits:?}");
    assert!(super::smaps::MNEMONICS.iter().all(|(f, _)| f.bits().count_ones() == 1));
}

fn entries(b: &[u8]) -> Vec<u64> {
    b.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn pagemap_bits_say_present_file_and_exclusive() {
    use super::pagemap::{PM_FILE, PM_MMAP_EXCLUSIVE, PM_PRESENT};
    let mut f = process();
    f.anon(0x1100_0000, 4 << 12, VmFlags::READ);
    f.touch(0x1100_0000, false);
    f.touch(0x1000_0000, true);
    let view = f.view();
    let at = |a: u64| entries(&pagemap_read(&view, (a >> 12) * 8, 8).unwrap())[0];
    assert_eq!(at(0x40_0000), PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_FILE);
    assert_eq!(at(0x40_1000), PM_PRESENT | PM_MMAP_EXCLUSIVE);
    assert_eq!(at(0x1000_0000), PM_PRESENT | PM_MMAP_EXCLUSIVE);
    assert_eq!(at(0x1100_0000), PM_PRESENT, "the zero page");
    assert_eq!(at(0x2000_0000), PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_FILE);
    assert_eq!(at(0x7fff_eff0_0000), 0, "absent");
    assert_eq!(at(0x6000_0000), 0, "no VMA");
    // A run: entry i is page i, checked against translation.
    let run = entries(&pagemap_read(&view, (0x1000_0000 >> 12) * 8, 32 * 8).unwrap());
    assert_eq!(run.len(), 32);
    for (i, e) in run.iter().enumerate() {
        let a = va(0x1000_0000 + i as u64 * 4096);
        assert_eq!(e & PM_PRESENT != 0, f.mapper.page_tables().translate(a).is_some(), "page {i}");
    }
    // Bounds: misaligned is EINVAL, the file ends at TASK_SIZE (the
    // trampoline page is not in it), a read across the end is cut.
    let err = pagemap_read(&view, 4, 8).unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL);
    assert!(pagemap_read(&view, 0, 12).is_err());
    assert!(pagemap_read(&view, (TASK >> 12) * 8, 64).unwrap().is_empty());
    assert_eq!(pagemap_read(&view, ((TASK >> 12) - 1) * 8, 64).unwrap().len(), 8);
    assert!(pagemap_read(&view, u64::MAX - 7, 8).unwrap().is_empty());
}

#[test]
fn sixty_five_thousand_vmas_cost_linear_time() {
    let mut f = Fixture::new();
    let zero = f.zero.clone();
    let n = 65_000u64;
    for i in 0..n {
        // Gaps keep them apart.
        f.map(&*zero, 0x1_0000_0000 + i * 0x2000, 0x1000, VmFlags::READ, false);
    }
    let view = f.view();
    let t = Instant::now();
    let text = maps(&view);
    let maps_time = t.elapsed();
    let line_len = "100000000-100001000 r--p 00000000 00:00 0 \n".len();
    assert_eq!(text.len(), n as usize * line_len);
    assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), n as usize);
    let t = Instant::now();
    let s = smaps(&view);
    let smaps_time = t.elapsed();
    assert!(s.len() < n as usize * 1024);
    // Linear: generous bounds that a quadratic walk (4 * 10^9 steps)
    // cannot meet.
    assert!(maps_time < Duration::from_secs(2), "maps took {maps_time:?}");
    assert!(smaps_time < Duration::from_secs(5), "smaps took {smaps_time:?}");
    let st = status(Some(&view), &StatusExtra::default());
    assert_eq!(status_kb(&String::from_utf8(st).unwrap(), "VmSize"), n * 4);
}

#[test]
fn meminfo_and_knobs() {
    let m = MemInfo {
        total: 64 << 20,
        free: 32 << 20,
        hugepages_total: 2,
        hugepages_free: 1,
        hugepages_rsvd: 1,
        ..Default::default()
    };
    let text = String::from_utf8(meminfo(&m)).unwrap();
    assert!(text.starts_with("MemTotal:          65536 kB\nMemFree:           32768 kB\nMemAvailable:      32768 kB\n"));
    assert!(text.contains("\nHugePages_Total:       2\nHugePages_Free:        1\nHugePages_Rsvd:        1\n"));
    assert!(text.contains("\nHugepagesize:       2048 kB\n"));
    assert!(text.contains("\nHardwareCorrupted:     0 kB\n"));
    assert!(text.lines().all(|l| l.len() >= 24), "{text}");
    let f = Fixture::new();
    let space = f.mapper.space();
    assert_eq!(sysctl_vm(space, "mmap_min_addr", 0).unwrap(), b"65536\n");
    assert_eq!(sysctl_vm(space, "max_map_count", 0).unwrap(), b"65530\n");
    assert_eq!(sysctl_vm(space, "overcommit_memory", 0).unwrap(), b"0\n");
    assert_eq!(sysctl_vm(space, "swappiness", 0), None);
    assert_eq!(hugepages_file("free_hugepages", 4, 3, 2).unwrap(), b"3\n");
    assert_eq!(hugepages_file("nr_hugepages", 4, 3, 2).unwrap(), b"4\n");
    assert_eq!(hugepages_file("resv_hugepages", 4, 3, 2).unwrap(), b"2\n");
    assert_eq!(hugepages_file("surplus_hugepages", 4, 3, 2).unwrap(), b"0\n");
    assert_eq!(hugepages_file("x", 4, 3, 2), None);
}

#[test]
fn shmem_inodes_come_from_the_kind() {
    let f = process();
    let ino = |_: &guest_mm::Vma| 77u64;
    let view = ProcView { shmem_ino: Some(&ino), ..f.view() };
    let text = String::from_utf8(maps(&view)).unwrap();
    assert!(text.contains("30000000-30001000 rw-s 00000000 00:01 77 "));
    let _ = Arc::strong_count(&f.zero);
}

#[test]
fn dirty_and_accessed_bits_make_private_file_pages_anonymous() {
    use super::pagemap::{PM_MMAP_EXCLUSIVE, PM_PRESENT};
    let f = process();
    let head = "00402000-00403000";
    let s = String::from_utf8(smaps(&f.view())).unwrap();
    assert_eq!((field(&s, head, "Private_Clean"), field(&s, head, "Anonymous")), (4, 0));
    assert_eq!(field(&s, head, "Referenced"), 0);
    // The CPU wrote the data page: Linux's copy-on-write copy, anonymous.
    f.set_leaf_bits(0x40_2000, 0x60);
    let s = String::from_utf8(smaps(&f.view())).unwrap();
    assert_eq!(field(&s, head, "Private_Clean"), 0);
    assert_eq!(field(&s, head, "Private_Dirty"), 4);
    assert_eq!(field(&s, head, "Pss_Dirty"), 4);
    assert_eq!(field(&s, head, "Anonymous"), 4);
    assert_eq!(field(&s, head, "Referenced"), 4);
    let e = entries(&pagemap_read(&f.view(), (0x40_2000 >> 12) * 8, 8).unwrap())[0];
    assert_eq!(e, PM_PRESENT | PM_MMAP_EXCLUSIVE);
    // A dirty shared page stays shmem.
    f.set_leaf_bits(0x3000_0000, 0x40);
    let s = String::from_utf8(smaps(&f.view())).unwrap();
    let shm = "30000000-30001000";
    assert_eq!((field(&s, shm, "Private_Dirty"), field(&s, shm, "Anonymous")), (4, 0));
}

#[test]
fn stat_has_52_fields_from_the_space_and_the_process() {
    let f = process();
    let extra = StatusExtra {
        name: "a name (with) spaces".into(),
        pid: 9,
        ppid: 7,
        pgid: 7,
        sid: 3,
        state: TaskState::Sleeping,
        signals: [1 << 9, 0, 1 << 1, 1 << 16, 1 << 40 | 1 << 2],
        ..Default::default()
    };
    let more = StatExtra { forked: true, start_stack: 0x7fff_0000 };
    let line = String::from_utf8(stat(Some(&f.view()), &extra, &more)).unwrap();
    assert!(line.ends_with('\n') && line.lines().count() == 1, "{line:?}");
    // The name is shown raw (15 bytes) in parentheses; split after it.
    let (head, rest) = line.trim_end().rsplit_once(") ").unwrap();
    assert_eq!(head, "9 (a name (with) s");
    let v: Vec<&str> = rest.split(' ').collect();
    assert_eq!(v.len(), 52 - 2, "{line}");
    let n = |i: usize| v[i - 3].parse::<u64>().unwrap(); // 1-based field numbers
    assert_eq!((v[0], n(4), n(5), n(6)), ("S", 7, 7, 3));
    assert_eq!(v[8 - 3], "-1", "tpgid");
    assert_eq!(n(9), 0x0040_0040, "PF_RANDOMIZE | PF_FORKNOEXEC");
    assert_eq!((n(18), n(19), n(20)), (20, 0, 1), "priority, nice, threads");
    let (size, rss) = super::status::size_and_rss(&f.view());
    assert!(size > 0 && rss > 0);
    assert_eq!((n(23), n(24), n(25)), (size, rss >> 12, u64::MAX), "vsize, rss pages, rsslim");
    assert_eq!(n(28), 0x7fff_0000, "startstack");
    assert_eq!((n(31), n(32), n(33), n(34)), (1 << 9, 1 << 1, 1 << 16, 1 << 2), "signals & 0x7fffffff");
    assert_eq!((n(35), n(38)), (1, 17), "wchan while sleeping, exit_signal");
    // A zombie: no memory, no stack, state Z; the first process is not
    // PF_FORKNOEXEC.
    let z = StatusExtra { state: TaskState::Zombie, ..extra.clone() };
    let line = String::from_utf8(stat(None, &z, &StatExtra { forked: false, ..more })).unwrap();
    let (_, rest) = line.trim_end().rsplit_once(") ").unwrap();
    let v: Vec<&str> = rest.split(' ').collect();
    assert_eq!(v.len(), 50);
    assert_eq!((v[0], v[9 - 3], v[23 - 3], v[24 - 3], v[28 - 3], v[35 - 3]), ("Z", "4194304", "0", "0", "0", "0"));
}

#[test]
fn a_zombies_status_has_no_memory_lines() {
    let f = process();
    let extra = StatusExtra { name: "child".into(), pid: 5, ppid: 2, pgid: 2, sid: 1, ..Default::default() };
    let live = String::from_utf8(status(Some(&f.view()), &extra)).unwrap();
    assert!(live.contains("\nState:\tR (running)\n") && live.contains("\nVmRSS:") && live.contains("\nCoreDumping:"));
    assert!(live.contains("\nNSpid:\t5\nNSpgid:\t2\nNSsid:\t1\n"), "{live}");
    let z = StatusExtra { state: TaskState::Zombie, ..extra };
    let dead = String::from_utf8(status(None, &z)).unwrap();
    assert!(dead.contains("\nState:\tZ (zombie)\n"), "{dead}");
    for gone in ["Vm", "Rss", "CoreDumping", "THP_enabled", "untag_mask", "HugetlbPages"] {
        assert!(!dead.contains(&format!("\n{gone}")), "{gone} in {dead}");
    }
    // The rest is as for a live process.
    let tail = |s: &str| s[s.find("\nThreads:").unwrap()..].to_string();
    assert_eq!(tail(&dead), tail(&live));
}

#[test]
fn cmdline_is_each_argument_with_a_nul() {
    let argv = vec![b"/bin/prog".to_vec(), b"".to_vec(), b"x y".to_vec()];
    assert_eq!(cmdline(&argv, false), b"/bin/prog\0\0x y\0");
    assert_eq!(cmdline(&argv, true), b"");
    assert_eq!(cmdline(&[], false), b"");
}

#[test]
fn pages_a_fork_shared_count_as_shared_until_the_other_process_goes() {
    use super::pagemap::{PM_MMAP_EXCLUSIVE, PM_PRESENT};
    let mut f = process();
    // A written THP (2 MiB, aligned) and written small pages.
    f.mapper.space().thp_policy().set_mode(guest_mm::ThpMode::Always);
    f.anon(0x1200_0000, 2 << 20, RW);
    f.touch(0x1200_0000, true);
    f.touch(0x1000_0000, true);
    let small = f.counted_pages(0x1000_0000, 16 << 12) * 4;
    let (thp, anon) = ("12000000-12200000", "10000000-10010000");
    let s = String::from_utf8(smaps(&f.view())).unwrap();
    assert_eq!(field(&s, thp, "AnonHugePages"), 2048);
    assert_eq!(field(&s, thp, "THPeligible"), 1);
    assert_eq!(field(&s, thp, "Private_Dirty"), 2048);
    let forked = f.mapper.space_mut().fork().unwrap();
    forked.flush.ignore();
    let child = forked.child;
    let s = String::from_utf8(smaps(&f.view())).unwrap();
    for (head, kb) in [(thp, 2048), (anon, small)] {
        assert_eq!(field(&s, head, "Rss"), kb, "{head}");
        assert_eq!(field(&s, head, "Pss"), kb / 2, "{head}");
        assert_eq!(field(&s, head, "Pss_Dirty"), kb / 2, "{head}");
        assert_eq!(field(&s, head, "Shared_Dirty"), kb, "{head}");
        assert_eq!(field(&s, head, "Private_Dirty"), 0, "{head}");
        assert_eq!(field(&s, head, "Anonymous"), kb, "{head}");
    }
    assert_eq!(field(&s, thp, "AnonHugePages"), 2048, "still one 2 MiB leaf");
    let rollup = String::from_utf8(smaps_rollup(&f.view())).unwrap();
    assert!(field(&rollup, "[rollup]", "Pss_Anon") < field(&rollup, "[rollup]", "Anonymous"));
    let view = f.view();
    let at = |a: u64| entries(&pagemap_read(&view, (a >> 12) * 8, 8).unwrap())[0];
    assert_eq!(at(0x1200_0000 + (5 << 12)), PM_PRESENT, "mapped twice: not exclusive");
    assert_eq!(at(0x1000_0000), PM_PRESENT);
    child.exit().ignore();
    let s = String::from_utf8(smaps(&f.view())).unwrap();
    for (head, kb) in [(thp, 2048), (anon, small)] {
        assert_eq!(field(&s, head, "Pss"), kb, "{head}");
        assert_eq!(field(&s, head, "Shared_Dirty"), 0, "{head}");
        assert_eq!(field(&s, head, "Private_Dirty"), kb, "{head}");
    }
    let view = f.view();
    let at = |a: u64| entries(&pagemap_read(&view, (a >> 12) * 8, 8).unwrap())[0];
    assert_eq!(at(0x1200_0000), PM_PRESENT | PM_MMAP_EXCLUSIVE, "the only process left");
}
