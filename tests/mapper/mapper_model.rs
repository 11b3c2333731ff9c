//! Property test: random sequences of mmap (every action kind, valid and
//! invalid), munmap and mprotect against the reference model in
//! `vmm_suite::model`. After every step each page's translation equals the
//! model, the VMAs equal the model, table and pool pages balance, and after
//! unmapping everything the allocator is back at its starting count. The
//! `mapper_ops` fuzz target runs the same model on decoded byte strings.

use proptest::prelude::*;
use vmm_suite::model::{Kind, Op, World, WIN_PAGES};

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Nothing),
        (0u8..4).prop_map(|s| Kind::Ram { pgoff_sel: s }),
        Just(Kind::Zero),
        Just(Kind::Buffer),
        any::<bool>().prop_map(|two| Kind::Huge { two }),
        Just(Kind::Io),
        (0u64..8).prop_map(|skip| Kind::Partial { skip }),
        (0u64..4, 0u64..4).prop_map(|(a, gap)| Kind::Discontig { a, gap }),
        Just(Kind::BadFrame),
        Just(Kind::ReservedFrame),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (kind(), 1u64..24, 0u8..8, any::<bool>(), prop::option::of((0u64..WIN_PAGES, any::<bool>())), 0u64..16)
            .prop_map(|(kind, pages, prot, shared, at, pgoff)| Op::Map { kind, pages, prot, shared, at, pgoff }),
        2 => (0u64..WIN_PAGES, 1u64..1200).prop_map(|(page, pages)| Op::Unmap { page, pages }),
        2 => (0u64..WIN_PAGES, 1u64..64, 0u8..8).prop_map(|(page, pages, prot)| Op::Protect { page, pages, prot }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mapper_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        World::run(&ops);
    }
}
