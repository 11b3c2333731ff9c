/* mmfuzz: the in-guest fuzzer for the Linux personality.
 *
 *   mmfuzz SEED OPS
 *
 * Makes OPS random memory operations on a 256-page arena at a fixed
 * address (mmap MAP_FIXED of private or shared anonymous memory with a
 * random protection (shared ones now and then with MAP_POPULATE, then
 * checked resident with mincore), munmap, mprotect, madvise(MADV_DONTNEED),
 * madvise(MADV_REMOVE), mremap MAYMOVE|FIXED,
 * shrinking or growing, writes and reads of tagged words,
 * probes of pages it may not touch) and forks now and then: the child
 * goes on with operations of its own, writes over every page it may,
 * checks everything and exits; the parent then checks that its own pages
 * are as its own history left them and that the shared pages show the
 * child's writes. Each result is checked against a model kept by the
 * program (private pages per process, the shared objects' contents in a
 * MAP_SHARED table both processes update), including where a fault lands
 * (si_addr) and why (SEGV_MAPERR or SEGV_ACCERR), and folded into a
 * digest. The run is the same on every Linux: the digest printed at the
 * end is the same on the host and under the VMM, so Linux is the oracle
 * as well as the model.
 *
 * Prints one line, "mmfuzz: seed S ops N forks F faults P digest D", and
 * exits 0; on the first disagreement, "FAIL ..." and exits 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ucontext.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL
#define NPAGES 256
#define ARENA ((char *)0x300000000000UL)
#define MAXLEN 16
#define MAXOBJ 4096

/* A page's state in the model. */
struct page {
    uint8_t mapped;  /* 0: nothing there */
    uint8_t prot;    /* PROT_READ | PROT_WRITE bits */
    uint8_t shared;  /* MAP_SHARED (contents in the shared table) */
    uint32_t seg;    /* same seg + contiguous: one VMA for sure */
    uint32_t tag;    /* private: the word written last (0: zero) */
    uint32_t obj;    /* shared: the object and the page in it */
    uint32_t off;
};

static struct page model[NPAGES];
/* The shared objects' contents (MAP_SHARED: a child's writes update the
 * parent's view) and the next object number. */
static uint32_t (*shm)[MAXLEN];
static uint32_t *next_obj;
static uint32_t next_seg = 1;
static uint64_t rng, digest = 1469598103934665603ULL;
static unsigned long ops_done, forks, faults;
static int in_child;
/* MMFUZZ_TRACE set: each operation on standard error. */
static int tracing;
#define TRACE(...) do { if (tracing) fprintf(stderr, __VA_ARGS__); } while (0)

static void fold(uint64_t v) {
    for (int i = 0; i < 8; i++) {
        digest ^= (v >> (8 * i)) & 0xff;
        digest *= 1099511628211ULL;
    }
}

static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static unsigned below(unsigned n) { return (unsigned)(next() % n); }

static void fail(const char *what, unsigned long i) {
    printf("FAIL op %lu%s: %s (page %lu)\n", ops_done, in_child ? " (child)" : "", what, i);
    fflush(stdout);
    _exit(1);
}

/* Fault probes: a touch that must fault jumps back here. */
static sigjmp_buf probe_env;
static volatile int probing;
static volatile void *fault_addr;
static volatile int fault_code;
static volatile unsigned long last_fault_op;
/* The last faults taken (for the report of an unexpected one). */
static struct { unsigned long op, addr, rip; int code; } ring[8];
static unsigned ring_at;

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    if (!probing) {
        /* Not async-signal-safe, but the program ends here. */
        unsigned long a = (unsigned long)si->si_addr, i = (a - (unsigned long)ARENA) / PAGE;
        ucontext_t *u = uc;
        printf("FAIL op %lu%s: an unexpected fault at %#lx (code %d, rip %#llx; last probe fault at %p, op %lu)",
               ops_done, in_child ? " (child)" : "", a, si->si_code, (unsigned long long)u->uc_mcontext.gregs[REG_RIP],
               (void *)fault_addr, last_fault_op);
        if (i < NPAGES)
            printf(": page %lu mapped %d prot %d shared %d", i, model[i].mapped, model[i].prot, model[i].shared);
        printf("\n");
        for (unsigned k = 0; k < 8; k++) {
            unsigned j = (ring_at + k) % 8;
            printf("  earlier fault: op %lu addr %#lx rip %#lx code %d\n", ring[j].op, ring[j].addr, ring[j].rip, ring[j].code);
        }
        fflush(stdout);
        _exit(1);
    }
    fault_addr = si->si_addr;
    fault_code = si->si_code;
    last_fault_op = ops_done;
    ring[ring_at++ % 8] = (typeof(ring[0])){ops_done, (unsigned long)si->si_addr,
                                            (unsigned long)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP], si->si_code};
    siglongjmp(probe_env, 1);
}

static char *addr(unsigned i) { return ARENA + (unsigned long)i * PAGE; }

static uint32_t expected(unsigned i) {
    struct page *p = &model[i];
    return p->shared ? shm[p->obj][p->off] : p->tag;
}

/* Touches page i (write: stores `tag` at both ends of the page; read:
 * checks both ends against the model), or checks that the touch faults
 * where and as it should. */
static void touch(unsigned i, int write, uint32_t tag) {
    struct page *p = &model[i];
    volatile uint32_t *lo = (volatile uint32_t *)addr(i);
    volatile uint32_t *hi = (volatile uint32_t *)(addr(i) + PAGE - 4);
    int allowed = p->mapped && (p->prot & (write ? PROT_WRITE : PROT_READ));
    TRACE("%lu%s %s %u%s\n", ops_done, in_child ? "c" : "", write ? "write" : "read", i, allowed ? "" : " (faults)");
    if (allowed) {
        if (write) {
            *lo = tag;
            *hi = tag;
            if (p->shared)
                shm[p->obj][p->off] = tag;
            else
                p->tag = tag;
        } else {
            uint32_t a = *lo, b = *hi, e = expected(i);
            if (a != e || b != e) {
                char m[96];
                snprintf(m, sizeof m, "read %08x/%08x where %08x was written", a, b, e);
                fail(m, i);
            }
            fold(a);
        }
        return;
    }
    probing = 1;
    if (sigsetjmp(probe_env, 1) == 0) {
        if (write)
            *lo = tag;
        else
            (void)*lo;
        probing = 0;
        fail(write ? "a write that should fault did not" : "a read that should fault did not", i);
    }
    probing = 0;
    faults++;
    if (fault_addr != (void *)lo) fail("a fault at the wrong address", i);
    int want = p->mapped ? SEGV_ACCERR : SEGV_MAPERR;
    if (fault_code != want) fail(p->mapped ? "not SEGV_ACCERR" : "not SEGV_MAPERR", i);
    fold(0xfa000000u | (unsigned)want);
}

static void check_all(void) {
    for (unsigned i = 0; i < NPAGES; i++) touch(i, 0, 0);
}

static void expect_ret(long got, long want, const char *call, unsigned i) {
    fold((uint64_t)got);
    if (got != want) {
        char m[96];
        snprintf(m, sizeof m, "%s returned %ld (errno %d), the model says %ld", call, got, got < 0 ? errno : 0, want);
        fail(m, i);
    }
}

/* A random range [*start, *start + *len) inside the arena. */
static void range(unsigned *start, unsigned *len) {
    *len = 1 + below(MAXLEN);
    *start = below(NPAGES - *len + 1);
}

/* madvise(advice) over a random range, returned in *s and *n. */
static long advise_range(int advice, const char *name, unsigned *s, unsigned *n) {
    range(s, n);
    TRACE("%lu%s %s %u+%u\n", ops_done, in_child ? "c" : "", name, *s, *n);
    return madvise(addr(*s), *n * PAGE, advice);
}

static int rand_prot(void) {
    static const int prots[] = {PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE};
    return prots[below(4)];
}

static void op_mmap(void) {
    unsigned s, n;
    range(&s, &n);
    int prot = rand_prot();
    int shared = below(3) == 0 && *next_obj < MAXOBJ;
    /* MAP_POPULATE of accessible shared memory: every page resident. */
    int populate = shared && prot != PROT_NONE && below(2);
    void *r = mmap(addr(s), n * PAGE, prot,
                   MAP_FIXED | MAP_ANONYMOUS | (shared ? MAP_SHARED : MAP_PRIVATE) | (populate ? MAP_POPULATE : 0), -1, 0);
    TRACE("%lu%s mmap %u+%u prot %d %s\n", ops_done, in_child ? "c" : "", s, n, prot, shared ? "shared" : "private");
    if (r != addr(s)) fail("mmap MAP_FIXED did not map where asked", s);
    uint32_t obj = shared ? (*next_obj)++ : 0, seg = next_seg++;
    if (shared) memset(shm[obj], 0, sizeof shm[obj]);
    for (unsigned k = 0; k < n; k++)
        model[s + k] = (struct page){1, (uint8_t)prot, (uint8_t)shared, seg, 0, obj, k};
    fold(0x1000 + prot * 2 + shared);
    if (populate) {
        unsigned char v[MAXLEN];
        if (mincore(addr(s), n * PAGE, v) != 0) fail("mincore", s);
        for (unsigned k = 0; k < n; k++)
            if (!(v[k] & 1)) fail("a page of a MAP_POPULATE mapping is not resident", s + k);
    }
}

/* madvise(MADV_REMOVE): mapping by mapping in order, shared ones lose
 * their object's pages (every mapping of the object reads zeroes), a
 * private one stops the walk with EINVAL; a hole is ENOMEM at the end. */
static void op_remove(void) {
    unsigned s, n;
    long r = advise_range(MADV_REMOVE, "remove", &s, &n);
    long want = 0;
    for (unsigned k = 0; k < n; k++) {
        struct page *p = &model[s + k];
        if (!p->mapped) {
            want = -ENOMEM;
        } else if (!p->shared) {
            want = -EINVAL;
            break;
        } else {
            shm[p->obj][p->off] = 0;
        }
    }
    expect_ret(r < 0 ? -errno : r, want, "madvise(REMOVE)", s);
}

static void op_munmap(void) {
    unsigned s, n;
    range(&s, &n);
    TRACE("%lu%s munmap %u+%u\n", ops_done, in_child ? "c" : "", s, n);
    expect_ret(munmap(addr(s), n * PAGE), 0, "munmap", s);
    for (unsigned k = 0; k < n; k++) model[s + k].mapped = 0;
}

/* mprotect and madvise(DONTNEED) change the mapped pages from the start up
 * to the first hole, then answer ENOMEM (Linux's order). */
static void op_mprotect(void) {
    unsigned s, n;
    range(&s, &n);
    int prot = rand_prot();
    TRACE("%lu%s mprotect %u+%u %d\n", ops_done, in_child ? "c" : "", s, n, prot);
    long r = mprotect(addr(s), n * PAGE, prot);
    /* Each VMA in the range becomes a new one (the range's ends split
     * it); VMAs that were apart may stay apart (unmergeable anon_vmas). */
    unsigned k = 0;
    uint32_t was = 0, seg = 0;
    for (; k < n && model[s + k].mapped; k++) {
        if (k == 0 || model[s + k].seg != was) seg = next_seg++;
        was = model[s + k].seg;
        model[s + k].prot = (uint8_t)prot;
        model[s + k].seg = seg;
    }
    expect_ret(r < 0 ? -errno : r, k == n ? 0 : -ENOMEM, "mprotect", s);
}

static void op_dontneed(void) {
    unsigned s, n;
    long r = advise_range(MADV_DONTNEED, "dontneed", &s, &n);
    unsigned k = 0;
    for (; k < n && model[s + k].mapped; k++)
        if (!model[s + k].shared) model[s + k].tag = 0;
    /* A range with a hole anywhere is ENOMEM, the mapped parts done. */
    for (unsigned j = k; j < n; j++)
        if (model[s + j].mapped && !model[s + j].shared) model[s + j].tag = 0;
    expect_ret(r < 0 ? -errno : r, k == n ? 0 : -ENOMEM, "madvise(DONTNEED)", s);
}

/* mremap(MAYMOVE|FIXED) of a range inside one VMA to a place that does
 * not overlap it; private ranges may also grow (the tail reads zero). */
static void op_mremap(void) {
    unsigned s, n;
    range(&s, &n);
    struct page *p = &model[s];
    if (!p->mapped) return;
    for (unsigned k = 1; k < n; k++) {
        struct page *q = &model[s + k];
        if (!q->mapped || q->seg != p->seg || q->shared != p->shared || (p->shared && q->off != p->off + k))
            return;
    }
    unsigned n2 = n;
    if (below(2)) n2 = p->shared ? 1 + below(n) : 1 + below(MAXLEN);
    unsigned d = below(NPAGES - n2 + 1);
    if (d < s + n && s < d + n2) return; /* overlapping: EINVAL on Linux */
    struct page moved[MAXLEN];
    memcpy(moved, &model[s], n * sizeof *moved);
    TRACE("%lu%s mremap %u+%u -> %u+%u\n", ops_done, in_child ? "c" : "", s, n, d, n2);
    void *r = mremap(addr(s), n * PAGE, n2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, addr(d));
    if (r != addr(d)) fail("mremap did not move where asked", s);
    for (unsigned k = 0; k < n; k++) model[s + k].mapped = 0;
    uint32_t seg = next_seg++;
    for (unsigned k = 0; k < n2; k++) {
        struct page q = k < n ? moved[k] : (struct page){1, moved[0].prot, 0, 0, 0, 0, 0};
        q.seg = seg;
        model[d + k] = q;
    }
    fold(0x2000 + n2);
}

static void run_ops(unsigned long count);

static void op_fork(void) {
    forks++;
    TRACE("%lu fork\n", ops_done);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) fail("fork failed", 0);
    if (pid == 0) {
        in_child = 1;
        rng ^= 0x9e3779b97f4a7c15ULL;
        run_ops(50 + below(150));
        check_all();
        /* Hostile: overwrite every page it may write. */
        for (unsigned i = 0; i < NPAGES; i++)
            if (model[i].mapped && (model[i].prot & PROT_WRITE)) touch(i, 1, 0xdead0000u | i);
        check_all();
        _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid) fail("waitpid", 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("FAIL op %lu: the child ended with status %#x\n", ops_done, st);
        fflush(stdout);
        _exit(1);
    }
    check_all();
}

static void run_ops(unsigned long count) {
    for (unsigned long o = 0; o < count; o++, ops_done++) {
        unsigned what = below(100);
        if (what < 12) op_mmap();
        else if (what < 18) op_munmap();
        else if (what < 26) op_mprotect();
        else if (what < 31) op_dontneed();
        else if (what < 36) op_mremap();
        else if (what < 38) op_remove();
        else if (what < 68) touch(below(NPAGES), 1, (uint32_t)next() | 1);
        else if (what < 99) touch(below(NPAGES), 0, 0);
        else if (!in_child) op_fork();
        else check_all();
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: mmfuzz SEED OPS\n");
        return 2;
    }
    unsigned long long seed = strtoull(argv[1], 0, 0);
    unsigned long count = strtoul(argv[2], 0, 0);
    rng = seed * 0x2545f4914f6cdd1dULL + 1;
    tracing = getenv("MMFUZZ_TRACE") != 0;
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);
    void *t = mmap(0, (MAXOBJ + 1) * sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED) fail("the shared table", 0);
    shm = t;
    next_obj = (uint32_t *)&shm[MAXOBJ];
    /* Nothing may be in the arena at the start. */
    check_all();
    run_ops(count);
    check_all();
    printf("mmfuzz: seed %llu ops %lu forks %lu faults %lu digest %016llx\n", seed, count, forks, faults,
           (unsigned long long)digest);
    return 0;
}
