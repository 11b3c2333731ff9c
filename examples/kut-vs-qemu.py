#!/usr/bin/env python3
"""kvm-unit-tests with vmm beside QEMU: launch time of x86/dummy.flat and
per-test / total time of the tests QEMU passes on this host.

Usage (from the repository root, after `cargo build --release -p vmm-cli` and
`apt-get install qemu-system-x86`):

    python3 examples/kut-vs-qemu.py [--dir ../shared/testguests/kvm-unit-tests]
        [--reps 5] [--timeout 120] [--json out.json] [--tests a,b,c]
        [--qemu-cpu-suffix ,-arch-capabilities]

QEMU runs as upstream's x86/run starts it (`-nodefaults -accel kvm -device
pc-testdev -device isa-debug-exit,iobase=0xf4,iosize=0x4 -device pci-testdev
-vnc none -serial stdio -kernel FILE -smp N [-append ARGS] [qemu_params]`),
so it boots through SeaBIOS; vmm boots the kernel with no firmware. Each
launch is a fresh process, timed from spawn to exit (wall clock). The
script reports the backend (the KVM module serving `/dev/kvm`: kvm_pvm,
kvm_intel or kvm_amd): on a nested or software-assisted KVM (kvm_pvm), CPL
0 code is emulated and figures are not those of hardware virtualization.

`--qemu-cpu-suffix` is appended to a `-cpu max` or `-cpu host` value (the
default, `,-arch-capabilities`, is what QEMU 7.2 needs to start at all on
hosts that refuse its IA32_ARCH_CAPABILITIES value; pass '' for none).
"""

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

QEMU_PASSES = (
    "smptest smptest3 vmexit_cpuid vmexit_mov_from_cr8 vmexit_mov_to_cr8 vmexit_inl_pmtimer "
    "vmexit_ipi vmexit_ipi_halt vmexit_ple_round_robin vmexit_tscdeadline vmexit_tscdeadline_immed "
    "vmexit_cr0_wp vmexit_cr4_pge idt_test realmode s3 setjmp rmap_chain intel_iommu lam"
).split()


def parse_cfg(path):
    tests, cur = {}, None
    for raw in open(path):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^\[(.+)\]$", line)
        if m:
            cur = tests.setdefault(m.group(1), {"smp": "1", "qemu_params": "", "test_args": ""})
            continue
        if cur is None or "=" not in line:
            continue
        k, v = (s.strip() for s in line.split("=", 1))
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        if k in ("extra_params", "qemu_params"):
            cur["qemu_params"] += " " + v
        else:
            cur[k] = v
    return tests


def timed(cmd, timeout):
    """Runs cmd; returns (seconds, exit status or None on timeout). QEMU's
    own errors also exit with 1, the isa-debug-exit PASS status: a run
    whose output has a `qemu-system-x86_64:` line that is not a warning
    counts as -1."""
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
        code = p.returncode
        errors = [l for l in p.stdout.splitlines() if l.startswith(b"qemu-system-x86_64: ") and b" warning: " not in l]
        if code == 1 and errors:
            code = -1
    except subprocess.TimeoutExpired:
        code = None
    return time.monotonic() - start, code


def verdict(code):
    return {1: "PASS", 77: "SKIP", None: "TIMEOUT", -1: "QEMU-ERROR"}.get(code, f"FAIL({code})")


def backend():
    """The KVM module behind /dev/kvm, by name."""
    for m in ("kvm_pvm", "kvm_intel", "kvm_amd"):
        if os.path.isdir(f"/sys/module/{m}"):
            return m
    return "unknown"


def with_cpu_suffix(params, suffix):
    """params with suffix appended to a -cpu max / -cpu host value."""
    out = list(params)
    for i, p in enumerate(out[:-1]):
        if p == "-cpu" and re.match(r"^(max|host)(,|$)", out[i + 1]):
            out[i + 1] += suffix
    return out


CPU_SUFFIX = ""


def qemu_cmd(flat, t):
    params = with_cpu_suffix(shlex.split(t.get("qemu_params", "")), CPU_SUFFIX)
    accel = [] if "-enable-kvm" in params else ["-accel", "kvm"]
    cmd = ["qemu-system-x86_64", "-nodefaults", *accel, "-device", "pc-testdev",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-device", "pci-testdev",
           "-vnc", "none", "-serial", "stdio", "-kernel", flat, "-smp", t.get("smp", "1")]
    if t.get("test_args"):
        cmd += ["-append", t["test_args"]]
    return cmd + params


def vmm_cmd(vmm, kdir, name):
    # -a: a named test in group nodefault runs too (run_tests.sh's rule).
    # --logs: vmm kut, as run_tests.sh, otherwise writes ./logs afresh.
    return [vmm, "kut", kdir, "-a", "--json", "--logs", LOG_DIR, "--", name]


LOG_DIR = os.path.join(tempfile.gettempdir(), f"kut-vs-qemu-logs-{os.getpid()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="../shared/testguests/kvm-unit-tests")
    ap.add_argument("--vmm", default="target/x86_64-unknown-linux-gnu/release/vmm")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--tests", default=",".join(QEMU_PASSES))
    ap.add_argument("--json")
    ap.add_argument("--qemu-cpu-suffix", default=",-arch-capabilities")
    a = ap.parse_args()
    global CPU_SUFFIX
    CPU_SUFFIX = a.qemu_cpu_suffix
    flat_dir = os.path.join(a.dir, "x86")
    cfg = parse_cfg(os.path.join(flat_dir, "unittests.cfg"))
    dummy = os.path.join(flat_dir, "dummy.flat")
    qemu_version = subprocess.run(["qemu-system-x86_64", "--version"], stdout=subprocess.PIPE,
                                  text=True).stdout.splitlines()[0]
    out = {"backend": backend(), "qemu": qemu_version, "qemu_cpu_suffix": CPU_SUFFIX, "command": sys.argv,
           "launch": {}, "tests": []}
    print(f"backend: {out['backend']}; {qemu_version}; -cpu max/host get {CPU_SUFFIX!r}")

    print(f"== launch: x86/dummy.flat, {a.reps} runs each (wall clock, spawn to exit)")
    for who, cmd in (("vmm", [a.vmm, "run", "--kernel", dummy]), ("qemu", qemu_cmd(dummy, {"smp": "1"}))):
        timed(cmd, a.timeout)  # warm-up (page cache)
        runs = [timed(cmd, a.timeout) for _ in range(a.reps)]
        bad = [c for _, c in runs if c != 1]
        secs = [s for s, _ in runs]
        out["launch"][who] = {"median_s": statistics.median(secs), "min_s": min(secs), "runs": secs, "bad": bad}
        print(f"{who:5} median {statistics.median(secs) * 1000:9.1f} ms  min {min(secs) * 1000:9.1f} ms"
              + (f"  (non-pass exits: {bad})" if bad else ""))
    ratio = out["launch"]["qemu"]["median_s"] / out["launch"]["vmm"]["median_s"]
    out["launch"]["qemu_over_vmm"] = ratio
    print(f"QEMU+SeaBIOS / vmm: {ratio:.1f}x\n")

    print(f"== tests (one run each, timeout {a.timeout} s)")
    print(f"{'test':28} {'vmm s':>8} {'vmm':10} {'qemu s':>8} {'qemu':10}")
    tot_v = tot_q = 0.0
    for name in a.tests.split(","):
        t = cfg[name]
        flat = os.path.join(flat_dir, t["file"])
        start = time.monotonic()
        p = subprocess.run(vmm_cmd(a.vmm, a.dir, name), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL)
        v_secs = time.monotonic() - start
        try:
            v_verdict = json.loads(p.stdout)["tests"][0]["verdict"]
        except (ValueError, KeyError, IndexError):
            v_verdict = "ERROR"
        q_secs, q_code = timed(qemu_cmd(flat, t), a.timeout)
        tot_v += v_secs
        tot_q += q_secs
        out["tests"].append({"name": name, "vmm_s": v_secs, "vmm": v_verdict, "qemu_s": q_secs,
                             "qemu": verdict(q_code)})
        print(f"{name:28} {v_secs:8.2f} {v_verdict:10} {q_secs:8.2f} {verdict(q_code):10}")
        sys.stdout.flush()
    out["total_vmm_s"], out["total_qemu_s"] = tot_v, tot_q
    print(f"{'total (serial)':28} {tot_v:8.1f} {'':10} {tot_q:8.1f}")
    print(f"backend: {out['backend']} (kvm_pvm: CPL 0 emulated, not hardware virtualization's figures)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
