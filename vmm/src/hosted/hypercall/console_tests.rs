//! Tests of the user copies ([`super::console`], reached as
//! [`HostedKernel::copy_from_user`] and [`HostedKernel::copy_to_user`]):
//! which pages a copy may touch, where each byte lands in guest-physical
//! memory (read back by frame, not through the code under test), and the
//! exact ends of the ranges allowed.

use guest_mm::{errno, CacheMode, GuestVirtAddr, PageProt, PageSize, Pfn};
use vm_memory::{Bytes, GuestAddress};

use super::HostedKernel;
use crate::hosted::mapper::{Access, Mapper};
use crate::hosted::providers::Providers;
use crate::memory::create_guest_memory;

const MEM: u64 = 64 << 20;
/// Two user read/write pages on frames that are not neighbours.
const RW_VA: u64 = 0x40_0000;
const RW_FRAMES: [u64; 2] = [0x2000, 0x2005];
/// A user read-only page right after them, then nothing.
const RO_VA: u64 = RW_VA + 0x2000;
const RO_FRAME: u64 = 0x2007;
const UNMAPPED_VA: u64 = RO_VA + 0x1000;
/// A supervisor read/write page in the lower half.
const SUPERVISOR_VA: u64 = 0x60_0000;
const SUPERVISOR_FRAME: u64 = 0x2009;
/// A user read/write page at address 0.
const ZERO_FRAME: u64 = 0x200b;
/// The last page of the lower half, user read/write.
const TOP_VA: u64 = (1 << 47) - 0x1000;
const TOP_FRAME: u64 = 0x200d;
/// A page with the user bit in the upper half (the VMM never makes one;
/// a copy must refuse it all the same).
const UPPER_VA: u64 = 0xffff_8000_0000_0000;
const UPPER_FRAME: u64 = 0x200f;

fn efault<T>() -> Result<T, i32> {
    Err(errno::EFAULT)
}

/// Writes a leaf straight into the tables (no VMA: the copies only walk).
fn raw_map(m: &mut Mapper, va: u64, frame: u64, user: bool) {
    let prot = PageProt { present: true, writable: true, user, no_execute: true, cache: CacheMode::WriteBack };
    let va = GuestVirtAddr::try_new(va).unwrap();
    m.space_mut().page_tables_mut().map_range(va, GuestAddress(frame << 12), 0x1000, prot, PageSize::Size4K).unwrap();
}

fn setup() -> HostedKernel {
    let mem = create_guest_memory(MEM).unwrap();
    let mut m = Mapper::new(mem.clone()).unwrap();
    let providers = Providers::new(&m, &mem, &[]).unwrap();
    let va = |a| GuestVirtAddr::try_new(a).unwrap();
    m.map_user_pages(va(RW_VA), &RW_FRAMES.map(Pfn), Access::RW).unwrap();
    m.map_user_pages(va(RO_VA), &[Pfn(RO_FRAME)], Access::R).unwrap();
    raw_map(&mut m, SUPERVISOR_VA, SUPERVISOR_FRAME, false);
    raw_map(&mut m, 0, ZERO_FRAME, true);
    raw_map(&mut m, TOP_VA, TOP_FRAME, true);
    raw_map(&mut m, UPPER_VA, UPPER_FRAME, true);
    // Every frame starts with a pattern a wrong copy would show.
    for f in
        [RW_FRAMES[0], RW_FRAMES[0] + 1, RW_FRAMES[1], RO_FRAME, SUPERVISOR_FRAME, ZERO_FRAME, TOP_FRAME, UPPER_FRAME]
    {
        mem.write_slice(&page_of(f), GuestAddress(f << 12)).unwrap();
    }
    super::test_kernel::kernel(mem, m, providers).0
}

/// The initial contents of frame `f`: each byte its offset's low bits
/// plus the frame number's.
fn page_of(f: u64) -> Vec<u8> {
    (0..0x1000u64).map(|i| (i as u8).wrapping_add(f as u8)).collect()
}

/// Frame `f` as it is now, read by physical address.
fn frame(hv: &HostedKernel, f: u64) -> Vec<u8> {
    let mut b = vec![0; 0x1000];
    hv.mem.read_slice(&mut b, GuestAddress(f << 12)).unwrap();
    b
}

#[test]
fn a_copy_across_a_page_boundary_lands_in_each_pages_own_frame() {
    let hv = setup();
    assert_eq!(hv.copy_to_user(RW_VA + 0xffd, b"hello"), Ok(()));
    let (a, b) = (frame(&hv, RW_FRAMES[0]), frame(&hv, RW_FRAMES[1]));
    assert_eq!(&a[0xffd..], b"hel");
    assert_eq!(&b[..2], b"lo");
    // Nothing else moved, and the frame after the first is not the
    // second page.
    assert_eq!(a[..0xffd], page_of(RW_FRAMES[0])[..0xffd]);
    assert_eq!(b[2..], page_of(RW_FRAMES[1])[2..]);
    assert_eq!(frame(&hv, RW_FRAMES[0] + 1), page_of(RW_FRAMES[0] + 1));
    assert_eq!(hv.copy_from_user(RW_VA + 0xffd, 5), Ok(b"hello".to_vec()));
    // Three pages, read-only the last: readable.
    let mut want = page_of(RW_FRAMES[0])[..0xffd].to_vec();
    want.extend_from_slice(b"hello");
    want.extend_from_slice(&page_of(RW_FRAMES[1])[2..]);
    want.extend_from_slice(&page_of(RO_FRAME)[..0x10]);
    assert_eq!(hv.copy_from_user(RW_VA, 0x2010), Ok(want));
}

#[test]
fn a_copy_may_end_exactly_where_the_mapping_ends() {
    let hv = setup();
    // The next page is read-only (writes) or unmapped (reads).
    assert_eq!(hv.copy_to_user(RO_VA - 0x10, &[0xaa; 0x10]), Ok(()));
    assert_eq!(hv.copy_from_user(RO_VA - 0x10, 0x10), Ok(vec![0xaa; 0x10]));
    assert_eq!(hv.copy_from_user(UNMAPPED_VA - 4, 4), Ok(page_of(RO_FRAME)[0xffc..].to_vec()));
    // One byte more is a fault.
    assert_eq!(hv.copy_from_user(UNMAPPED_VA - 4, 5), efault());
    assert_eq!(hv.copy_to_user(RO_VA - 0x10, &[0xbb; 0x11]), efault());
    // Nothing at all: nothing is touched, so nothing can fault (Linux).
    assert_eq!(hv.copy_to_user(UNMAPPED_VA, &[]), Ok(()));
    assert_eq!(hv.copy_from_user(UNMAPPED_VA, 0), Ok(vec![]));
}

#[test]
fn a_write_that_reaches_a_read_only_page_writes_nothing() {
    let hv = setup();
    assert_eq!(hv.copy_to_user(RO_VA - 4, &[0xcc; 8]), efault());
    assert_eq!(hv.copy_to_user(RO_VA, &[0xcc; 1]), efault());
    assert_eq!(frame(&hv, RW_FRAMES[1]), page_of(RW_FRAMES[1]));
    assert_eq!(frame(&hv, RO_FRAME), page_of(RO_FRAME));
}

#[test]
fn supervisor_pages_are_refused_in_the_lower_half_too() {
    let hv = setup();
    assert_eq!(hv.copy_from_user(SUPERVISOR_VA, 8), efault());
    assert_eq!(hv.copy_from_user(SUPERVISOR_VA - 4, 8), efault());
    assert_eq!(hv.copy_to_user(SUPERVISOR_VA, &[0xdd; 8]), efault());
    assert_eq!(frame(&hv, SUPERVISOR_FRAME), page_of(SUPERVISOR_FRAME));
}

#[test]
fn the_last_page_of_the_lower_half_is_reachable_and_nothing_past_it() {
    let hv = setup();
    let end = 1u64 << 47;
    assert_eq!(hv.copy_to_user(end - 0x10, &[0xee; 0x10]), Ok(()));
    assert_eq!(hv.copy_from_user(end - 0x10, 0x10), Ok(vec![0xee; 0x10]));
    assert_eq!(frame(&hv, TOP_FRAME)[0xff0..], [0xee; 0x10]);
    assert_eq!(hv.copy_from_user(end - 0x10, 0x11), efault());
    assert_eq!(hv.copy_to_user(end - 0x10, &[0x11; 0x11]), efault());
    assert_eq!(frame(&hv, TOP_FRAME)[0xff0..], [0xee; 0x10]);
    // A user entry in the upper half, wrapping and non-canonical ranges.
    assert_eq!(hv.copy_from_user(UPPER_VA, 8), efault());
    assert_eq!(hv.copy_to_user(UPPER_VA, &[0x22; 8]), efault());
    assert_eq!(frame(&hv, UPPER_FRAME), page_of(UPPER_FRAME));
    assert_eq!(hv.copy_from_user(u64::MAX - 3, 8), efault());
    assert_eq!(hv.copy_to_user(u64::MAX - 3, &[0; 8]), efault());
    assert_eq!(hv.copy_from_user(end, 1), efault());
}

#[test]
fn copies_from_the_first_page_of_the_address_space() {
    let hv = setup();
    let want = page_of(ZERO_FRAME);
    assert_eq!(hv.copy_from_user(0, 0x20), Ok(want[..0x20].to_vec()));
    assert_eq!(hv.copy_from_user(1, 0x20), Ok(want[1..0x21].to_vec()));
    assert_eq!(hv.copy_to_user(0, &[0x33; 0x20]), Ok(()));
    assert_eq!(hv.copy_to_user(1, &[0x44; 0x20]), Ok(()));
    let f = frame(&hv, ZERO_FRAME);
    assert_eq!(f[0], 0x33);
    assert_eq!(f[1..0x21], [0x44; 0x20]);
    assert_eq!(f[0x21..], want[0x21..]);
}
