/* fntrace: which functions of a program run, in the order they first run.
 *
 *   fntrace OFFSETS OUT -- PROGRAM [ARGS...]
 *
 * OFFSETS holds one hexadecimal offset per line: the functions' entries,
 * relative to the start of PROGRAM's first mapping (a static-pie's load
 * base; `nm` values of a static-pie binary are such offsets). fntrace
 * runs PROGRAM under ptrace with an int3 on every entry (written through
 * /proc/PID/mem before the first instruction), follows its threads and
 * children, and removes each int3 the first time it is hit, writing that
 * offset to OUT: one trap per function, so a run costs little more than
 * without it. PROGRAM's exit status is fntrace's.
 *
 * Used by regen.sh to make order.txt; not part of the VMM. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned long *offs;
static unsigned char *orig;
static size_t n;

static int cmp(const void *a, const void *b) {
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 5 || argv[3][0] != '-' || argv[3][1] != '-') {
        fprintf(stderr, "usage: fntrace OFFSETS OUT -- PROGRAM [ARGS...]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) die(argv[1]);
    size_t cap = 1 << 16;
    unsigned long o;
    offs = malloc(cap * sizeof *offs);
    while (fscanf(f, "%lx", &o) == 1) {
        if (n == cap && !(offs = realloc(offs, (cap *= 2) * sizeof *offs))) die("realloc");
        offs[n++] = o;
    }
    fclose(f);
    qsort(offs, n, sizeof *offs, cmp);
    if (!(orig = malloc(n ? n : 1))) die("malloc");
    FILE *out = fopen(argv[2], "w");
    if (!out) die(argv[2]);

    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execv(argv[4], argv + 4);
        _exit(127);
    }
    int st;
    if (waitpid(child, &st, 0) < 0 || !WIFSTOPPED(st)) die("exec");
    ptrace(PTRACE_SETOPTIONS, child, 0,
           PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_EXITKILL);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", child);
    FILE *maps = fopen(path, "r");
    unsigned long base = 0;
    if (!maps || fscanf(maps, "%lx", &base) != 1) die(path);
    fclose(maps);
    snprintf(path, sizeof path, "/proc/%d/mem", child);
    int mem = open(path, O_RDWR);
    if (mem < 0) die(path);
    unsigned char int3 = 0xcc;
    for (size_t i = 0; i < n; i++) {
        if (pread(mem, &orig[i], 1, base + offs[i]) != 1 || pwrite(mem, &int3, 1, base + offs[i]) != 1)
            die("breakpoint");
    }
    ptrace(PTRACE_CONT, child, 0, 0);

    size_t hits = 0;
    int status = 1;
    for (;;) {
        pid_t t = waitpid(-1, &st, __WALL);
        if (t < 0) break;
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            if (t == child) {
                status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
            continue;
        }
        int sig = WSTOPSIG(st), pass = 0;
        if (st >> 16) {
            pass = 0; /* a clone, fork or vfork event */
        } else if (sig == SIGTRAP) {
            struct user_regs_struct r;
            ptrace(PTRACE_GETREGS, t, 0, &r);
            unsigned long off = r.rip - 1 - base;
            unsigned long *hit = bsearch(&off, offs, n, sizeof *offs, cmp);
            if (hit) {
                /* Children share the int3s as they were at the fork; the
                 * restore is written into the traced process only, so a
                 * child's hit restores (and reports) again: harmless. */
                char p2[64];
                snprintf(p2, sizeof p2, "/proc/%d/mem", t);
                int m2 = open(p2, O_RDWR);
                if (m2 >= 0) {
                    pwrite(m2, &orig[hit - offs], 1, base + off);
                    close(m2);
                }
                r.rip -= 1;
                ptrace(PTRACE_SETREGS, t, 0, &r);
                fprintf(out, "%lx\n", off);
                hits++;
            } else {
                pass = sig;
            }
        } else if (sig != SIGSTOP) {
            pass = sig;
        }
        ptrace(PTRACE_CONT, t, 0, pass);
    }
    fclose(out);
    fprintf(stderr, "fntrace: %zu of %zu functions run\n", hits, n);
    return status;
}
