#!/usr/bin/env bash
# Remakes order.txt, the `vmm` binary's link order (see ../build.rs):
# builds the release `vmm`, runs the common launches under fntrace (an
# int3 on every function, removed when first hit) and orders the
# functions they ran, launch by launch (order.py). Run it after a change
# that renames or adds much launch-path code, or after a toolchain
# upgrade (`cargo test --release --test vmm vmm_link_order` says when).
# Needs gcc, nm and Python; the Solo5, kvm-unit-tests and linux-mm runs
# are skipped where ../../../../shared/testguests is absent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
guests=${TESTGUESTS:-$root/../shared/testguests}
work=$root/target/link-order
mkdir -p "$work"
cd "$root"
cargo build --release -p vmm-cli
vmm=$root/target/x86_64-unknown-linux-gnu/release/vmm
gcc -O2 -Wall -o "$work/fntrace" "$here/fntrace.c"
nm --defined-only "$vmm" | awk '$2 ~ /^[tTwW]$/ {print $1}' | sort -u >"$work/offsets"
gcc -static -O2 -pthread -o "$work/threads" tests/guests/linux/threads.c
gcc -static -O2 -o "$work/procs" tests/guests/linux/procs.c
truncate -s 1M "$work/disk.img"

runs=()
trace() { # NAME ARGS...: one traced run of `vmm ARGS...`
    local name=$1
    shift
    if "$work/fntrace" "$work/offsets" "$work/$name.hits" -- "$vmm" "$@" >/dev/null 2>"$work/$name.err"; then
        echo "$name: $(tail -n 1 "$work/$name.err")"
    else
        echo "$name: exit $? (kept): $(tail -n 1 "$work/$name.err")"
    fi
    runs+=("$name")
}
group() { # NAME RUNS...: the hit files of those runs that happened
    local name=$1 files=()
    shift
    for r in "$@"; do [ -s "$work/$r.hits" ] && files+=("$work/$r.hits"); done
    local IFS=,
    echo "$name=${files[*]:-}"
}
rm -f "$work"/*.hits
trace builtin run
# The bare KVM launch `vmm bench` compares launches with: the same layout
# benefit as ours, so the ratio is not flattered.
trace floor launch-floor
if [ -d "$guests/solo5-spt" ]; then
    trace solo5 run --guest "$guests/solo5-spt/test_hello.spt"
    trace solo5blk run --guest "$guests/solo5-spt/test_blk.spt" --block "storage=$work/disk.img"
fi
if [ -d "$guests/kvm-unit-tests" ]; then
    trace kut run --kernel "$guests/kvm-unit-tests/x86/msr.flat"
    trace kut_smp run --kernel "$guests/kvm-unit-tests/x86/smptest.flat" --vcpus 2
fi
if [ -d "$guests/linux-mm" ]; then
    trace linux run --guest "$guests/linux-mm/bin/hello-glibc-static"
    trace linux_musl run --guest "$guests/linux-mm/bin/hello-musl-static"
fi
trace linux_threads run --guest "$work/threads"
trace linux_procs run --guest "$work/procs"

python3 "$here/order.py" "$vmm" "$here/order.txt" \
    "$(group builtin builtin floor)" \
    "$(group solo5 solo5 solo5blk)" \
    "$(group kut kut kut_smp)" \
    "$(group linux linux linux_musl linux_threads linux_procs)"
