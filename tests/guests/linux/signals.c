/* Signal delivery, run on the host and under `vmm run`: each scenario
 * (argv[1]) prints what it saw; tests/guests/linux_signals.rs compares
 * the two outputs and exit statuses. Build: gcc -static -O1. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

static sigjmp_buf env;
static volatile sig_atomic_t hits;
static volatile int got_sig, got_code;
static void *volatile got_addr;
static volatile pid_t got_pid;
static char *page;

static void on(int sig, void (*fn)(int, siginfo_t *, void *), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, 0)) {
        perror("sigaction");
        exit(2);
    }
}

static void record(int sig, siginfo_t *si) {
    got_sig = sig;
    got_code = si->si_code;
    got_addr = si->si_addr;
    got_pid = si->si_pid;
    hits++;
}

static void jump_out(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    record(sig, si);
    siglongjmp(env, 1);
}

static const char *segv_code(int c) {
    return c == SEGV_MAPERR ? "SEGV_MAPERR" : c == SEGV_ACCERR ? "SEGV_ACCERR" : "other";
}

/* A write to PROT_NONE, to NULL, to an unmapped page: each caught,
 * with its si_code and si_addr. */
static int segv(void) {
    on(SIGSEGV, jump_out, 0);
    page = mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *gone = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gone, 4096);
    struct { const char *what; char *at; } cases[] = {{"prot_none", page + 16}, {"null", 0}, {"unmapped", gone + 8}};
    for (int i = 0; i < 3; i++) {
        if (!sigsetjmp(env, 1)) {
            *(volatile char *)cases[i].at = 1;
            printf("%s: no fault\n", cases[i].what);
        } else {
            printf("%s: sig %d %s addr_ok %d\n", cases[i].what, got_sig, segv_code(got_code),
                   got_addr == (void *)cases[i].at);
        }
    }
    /* The mask was restored by siglongjmp: SIGSEGV is not blocked. */
    sigset_t m;
    sigprocmask(SIG_BLOCK, 0, &m);
    printf("segv blocked after longjmp: %d\n", sigismember(&m, SIGSEGV));
    return 0;
}

/* The handler makes the page writable and returns: the write retries. */
static void fix(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    record(sig, si);
    mprotect(page, 4096, PROT_READ | PROT_WRITE);
}

static int fixup(void) {
    on(SIGSEGV, fix, 0);
    page = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ((volatile char *)page)[100] = 42;
    printf("after fixup: %d, %d fault(s), %s addr_ok %d\n", page[100], hits, segv_code(got_code),
           got_addr == page + 100);
    return 0;
}

static void usr(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    record(sig, si);
    sigset_t m;
    sigprocmask(SIG_BLOCK, 0, &m);
    printf("in handler: sig %d self-blocked %d\n", sig, sigismember(&m, sig));
}

/* raise (tgkill: SI_TKILL) and kill (SI_USER) to a handler; a blocked
 * signal stays pending until unblocked; SA_NODEFER, SA_RESETHAND. */
static int sendself(void) {
    on(SIGUSR1, usr, 0);
    raise(SIGUSR1);
    printf("raise: hits %d sig %d code_tkill %d pid_ok %d\n", hits, got_sig, got_code == SI_TKILL,
           got_pid == getpid());
    kill(getpid(), SIGUSR1);
    printf("kill: hits %d code_user %d\n", hits, got_code == SI_USER);
    sigset_t b, p;
    sigemptyset(&b);
    sigaddset(&b, SIGUSR1);
    sigprocmask(SIG_BLOCK, &b, 0);
    raise(SIGUSR1);
    sigpending(&p);
    printf("blocked: hits %d pending %d\n", hits, sigismember(&p, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &b, 0);
    printf("unblocked: hits %d\n", hits);
    on(SIGUSR2, usr, SA_NODEFER | SA_RESETHAND);
    raise(SIGUSR2);
    struct sigaction now;
    sigaction(SIGUSR2, 0, &now);
    printf("resethand: hits %d default %d\n", hits, now.sa_handler == SIG_DFL);
    signal(SIGUSR1, SIG_IGN);
    raise(SIGUSR1);
    printf("ignored: hits %d\n", hits);
    return 0;
}

static char *alt_lo, *alt_hi;
static volatile int on_alt;

static void overflow_handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    char here;
    on_alt = &here > alt_lo && &here < alt_hi;
    record(sig, si);
    siglongjmp(env, 1);
}

static int depth(int n) {
    volatile char pad[1024];
    pad[0] = (char)n;
    if (n < 0)
        return 0;
    return depth(n + 1) + pad[0];
}

/* Stack overflow: only a handler on the alternate stack can run. */
static int altstack(void) {
    stack_t ss;
    ss.ss_size = 64 * 1024;
    ss.ss_sp = malloc(ss.ss_size);
    ss.ss_flags = 0;
    alt_lo = ss.ss_sp;
    alt_hi = alt_lo + ss.ss_size;
    if (sigaltstack(&ss, 0)) {
        perror("sigaltstack");
        return 2;
    }
    on(SIGSEGV, overflow_handler, SA_ONSTACK);
    /* A guard 512 KiB below here, so the overflow does not need the
     * whole 8 MiB stack. */
    char here;
    char *guard = (char *)(((uintptr_t)&here & ~(uintptr_t)4095) - (512 << 10));
    if (mmap(guard, 65536, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
        perror("mmap guard");
        return 2;
    }
    if (!sigsetjmp(env, 1))
        printf("depth %d\n", depth(0));
    printf("overflow caught: sig %d on altstack %d\n", got_sig, on_alt);
    stack_t old;
    sigaltstack(0, &old);
    printf("altstack still set: %d\n", old.ss_sp == alt_lo && old.ss_flags == 0);
    return 0;
}

/* The handler clobbers every XMM register, MXCSR and the x87 control
 * word; the interrupted code finds its own values again. */
static void clobber(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    record(sig, si);
    unsigned mx = 0x7f80; /* round toward zero, exceptions masked */
    unsigned short cw = 0xc7f;
    __asm__ volatile("pcmpeqd %%xmm0, %%xmm0\n\t"
                     "movdqa %%xmm0, %%xmm1\n\tmovdqa %%xmm0, %%xmm7\n\t"
                     "movdqa %%xmm0, %%xmm8\n\tmovdqa %%xmm0, %%xmm15\n\t"
                     "ldmxcsr %0\n\tfldcw %1"
                     :
                     : "m"(mx), "m"(cw)
                     : "xmm0", "xmm1", "xmm7", "xmm8", "xmm15");
    mprotect(page, 4096, PROT_READ | PROT_WRITE);
}

static int xmm(void) {
    on(SIGSEGV, clobber, 0);
    page = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    double in1 = 1.25, in8 = 3.5, out1 = 0, out8 = 0;
    unsigned mx = 0;
    unsigned short cw = 0;
    __asm__ volatile("movsd %4, %%xmm1\n\t"
                     "movsd %5, %%xmm8\n\t"
                     "movl $7, (%6)\n\t"
                     "movsd %%xmm1, %0\n\t"
                     "movsd %%xmm8, %1\n\t"
                     "stmxcsr %2\n\t"
                     "fnstcw %3"
                     : "=m"(out1), "=m"(out8), "=m"(mx), "=m"(cw)
                     : "m"(in1), "m"(in8), "r"(page)
                     : "xmm1", "xmm8", "memory");
    double third = 1.0 / 3.0 * 3.0;
    printf("xmm1 %g xmm8 %g mxcsr %#x fcw %#x faults %d third %.17g\n", out1, out8, mx & 0xffc0, cw, hits, third);
    return 0;
}

static int ill(void) {
    on(SIGILL, jump_out, 0);
    if (!sigsetjmp(env, 1))
        __asm__ volatile("ud2");
    printf("ill: sig %d code_illopn %d\n", got_sig, got_code == ILL_ILLOPN);
    return 0;
}

static int fpe(void) {
    on(SIGFPE, jump_out, 0);
    volatile int zero = 0, x = 7;
    if (!sigsetjmp(env, 1))
        x = x / zero;
    printf("fpe: sig %d code_intdiv %d\n", got_sig, got_code == FPE_INTDIV);
    return 0;
}

static void trap_handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    record(sig, si);
}

static int trap(void) {
    on(SIGTRAP, trap_handler, 0);
    __asm__ volatile("int3");
    printf("trap: sig %d hits %d code_kernel %d\n", got_sig, hits, got_code == SI_KERNEL);
    return 0;
}

/* A handler that returns with a corrupted context. */
static int corruption;

static void corrupt(int sig, siginfo_t *si, void *ucv) {
    ucontext_t *uc = ucv;
    record(sig, si);
    if (corruption == 0)
        uc->uc_mcontext.gregs[REG_RIP] = (greg_t)0x8000000000000000ull;
    else if (corruption == 1)
        uc->uc_mcontext.fpregs = (fpregset_t)(uintptr_t)0x10;
    else if (corruption == 2)
        uc->uc_mcontext.gregs[REG_EFL] |= 0x3000 | 0x4000; /* IOPL 3, NT: dropped */
    else if (corruption == 3)
        uc->uc_mcontext.gregs[REG_CSGSFS] &= ~0xffffll; /* cs 0 */
}

static int badframe(int which) {
    corruption = which;
    on(SIGUSR1, corrupt, 0);
    raise(SIGUSR1);
    unsigned long fl;
    __asm__ volatile("pushfq; popq %0" : "=r"(fl));
    printf("survived: iopl %lu nt %lu\n", (fl >> 12) & 3, (fl >> 14) & 1);
    return 0;
}

/* Touches anonymous memory until a page cannot be given: under the VMM
 * that is SIGBUS (BUS_ADRERR) at the page; Linux would overcommit. */
static int exhaust(void) {
    on(SIGBUS, jump_out, 0);
    size_t len = (size_t)1 << 30;
    char *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    volatile size_t i = 0;
    if (!sigsetjmp(env, 1)) {
        for (i = 0; i < len; i += 4096)
            p[i] = 1;
        printf("exhaust: no bus\n");
        return 0;
    }
    printf("exhaust: sig %d code_adrerr %d addr_ok %d\n", got_sig, got_code == BUS_ADRERR,
           got_addr == (void *)(p + i));
    return 0;
}

/* alarm + pause; a periodic ITIMER_REAL + sigsuspend, which waits with
 * its own mask and restores the caller's. */
static int alarms(void) {
    on(SIGALRM, trap_handler, 0);
    unsigned first = alarm(1);
    unsigned left = alarm(1);
    int r = pause();
    printf("alarm: first %u left %u pause %d eintr %d hits %d sig %d code_kernel %d\n", first, left, r,
           errno == EINTR, hits, got_sig, got_code == SI_KERNEL);
    sigset_t b, none, now;
    sigemptyset(&none);
    sigemptyset(&b);
    sigaddset(&b, SIGALRM);
    sigprocmask(SIG_BLOCK, &b, 0);
    struct itimerval it = {{0, 20000}, {0, 20000}}, got;
    setitimer(ITIMER_REAL, &it, 0);
    for (int i = 0; i < 3; i++)
        sigsuspend(&none);
    getitimer(ITIMER_REAL, &got);
    sigprocmask(SIG_BLOCK, 0, &now);
    printf("itimer: hits %d interval_us %ld armed %d alrm_still_blocked %d\n", hits, (long)got.it_interval.tv_usec,
           got.it_value.tv_sec == 0 && got.it_value.tv_usec > 0, sigismember(&now, SIGALRM));
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, 0);
    getitimer(ITIMER_REAL, &got);
    printf("stopped: %d\n", got.it_value.tv_sec == 0 && got.it_value.tv_usec == 0);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    const char *w = argc > 1 ? argv[1] : "";
    if (!strcmp(w, "segv")) return segv();
    if (!strcmp(w, "fixup")) return fixup();
    if (!strcmp(w, "send")) return sendself();
    if (!strcmp(w, "altstack")) return altstack();
    if (!strcmp(w, "xmm")) return xmm();
    if (!strcmp(w, "ill")) return ill();
    if (!strcmp(w, "exhaust")) return exhaust();
    if (!strcmp(w, "alarm")) return alarms();
    if (!strcmp(w, "die-alarm")) { alarm(1); pause(); return 0; }
    if (!strcmp(w, "fpe")) return fpe();
    if (!strcmp(w, "trap")) return trap();
    if (!strcmp(w, "badrip")) return badframe(0);
    if (!strcmp(w, "badfp")) return badframe(1);
    if (!strcmp(w, "badflags")) return badframe(2);
    if (!strcmp(w, "badcs")) return badframe(3);
    if (!strcmp(w, "die-segv")) { *(volatile int *)0 = 1; return 0; }
    if (!strcmp(w, "die-abort")) abort();
    if (!strcmp(w, "die-bus")) { raise(SIGBUS); return 0; }
    if (!strcmp(w, "die-ill")) { __asm__ volatile("ud2"); return 0; }
    if (!strcmp(w, "die-blocked-segv")) {
        sigset_t b;
        sigemptyset(&b);
        sigaddset(&b, SIGSEGV);
        sigprocmask(SIG_BLOCK, &b, 0);
        on(SIGSEGV, jump_out, 0);
        *(volatile int *)8 = 1;
        return 0;
    }
    if (!strcmp(w, "die-ignored-segv")) {
        signal(SIGSEGV, SIG_IGN);
        *(volatile int *)8 = 1;
        return 0;
    }
    fprintf(stderr, "usage: signals SCENARIO\n");
    return 2;
}
