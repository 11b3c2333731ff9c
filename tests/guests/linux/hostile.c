/* Hostile programs for the VMM's reliability sweep
 * (tests/vmm/vmm_hostile_sweep.rs): each mode tries to exhaust the VMM
 * (its memory, its time, its output) rather than to compute anything.
 * The sweep checks how the run ends, its duration and the VMM's peak
 * memory, not what the program prints (beyond a first line saying it
 * started). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL

/* Maps and touches 2 MiB at a time until mmap fails or a touch is
 * refused, then touches everything again, forever. */
static int touch_all(void) {
    for (;;) {
        char *p = mmap(NULL, 2UL << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) break;
        for (unsigned long i = 0; i < (2UL << 20); i += PAGE) p[i] = 1;
    }
    printf("mmap failed: %s\n", strerror(errno));
    return 0;
}

/* Grows one mapping a page at a time with mremap(MAYMOVE), writing its
 * last page each time. */
static int mremap_growth(void) {
    unsigned long len = PAGE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int n = 0;
    for (; n < 8000; n++) {
        char *q = mremap(p, len, len + PAGE, MREMAP_MAYMOVE);
        if (q == MAP_FAILED) break;
        p = q;
        len += PAGE;
        p[len - 1] = 1;
    }
    printf("mremaps %d\n", n);
    return 0;
}

/* Children that fork until they are refused, and then spin. */
static _Noreturn int fork_bomb(void) {
    struct rlimit rl = { 64, 64 };
    setrlimit(RLIMIT_NPROC, &rl);
    for (;;) {
        pid_t p = fork();
        if (p < 0) for (;;) ;
    }
}

/* Writes 1 MiB buffers to stdout forever. */
static int stdout_flood(void) {
    static char buf[1 << 20];
    memset(buf, 'x', sizeof buf);
    for (;;)
        if (write(1, buf, sizeof buf) < 0) return 1;
}

/* 65,000 mappings (alternating protection so that none merge), then
 * reads /proc/self/maps to the end, ten times. */
static int many_vmas(void) {
    char *p = mmap(NULL, 65000 * 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { printf("mmap: %s\n", strerror(errno)); return 1; }
    int n = 0;
    for (; n < 65000; n++)
        if (mprotect(p + 2 * n * PAGE, PAGE, PROT_READ)) break;
    printf("mprotects %d (%s)\n", n, strerror(errno));
    static char buf[1 << 16];
    for (int round = 0; round < 10; round++) {
        FILE *f = fopen("/proc/self/maps", "r");
        if (!f) { printf("fopen: %s\n", strerror(errno)); return 1; }
        size_t total = 0, lines = 0, got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
            total += got;
            for (size_t i = 0; i < got; i++) lines += buf[i] == '\n';
        }
        fclose(f);
        if (total == 0) return 1;
        if (round == 0) printf("maps read %zu lines\n", lines);
    }
    printf("maps read 10 times\n");
    return 0;
}

/* 16,000 mappings (every other page of a range made readable), then
 * children that hold a copy of them all: forks until refused, each child
 * pausing. The VMAs are VMM memory, so the forks must be refused long
 * before the copies outgrow the guest's RAM. */
static int fork_mappings(void) {
    char *p = mmap(NULL, 8000 * 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { printf("mmap: %s\n", strerror(errno)); return 1; }
    int n = 0;
    for (; n < 8000; n++)
        if (mprotect(p + 2 * n * PAGE, PAGE, PROT_READ)) break;
    printf("mprotects %d\n", n);
    int forks = 0;
    for (; forks < 255; forks++) {
        pid_t c = fork();
        if (c < 0) break;
        if (c == 0) for (;;) pause();
    }
    printf("forks %d (%s)\n", forks, forks < 255 ? strerror(errno) : "no limit");
    return 0;
}

/* Fills pipes nobody reads, then blocks writing to one. */
static int full_pipes(void) {
    int fds[2];
    int pipes = 0;
    for (; pipes < 100; pipes++) {
        if (pipe(fds)) break;
        static char buf[PAGE];
        /* Fill it without blocking: the write end non-blocking. */
        if (fcntl(fds[1], F_SETFL, O_NONBLOCK)) break;
        while (write(fds[1], buf, sizeof buf) > 0) ;
    }
    printf("full pipes %d\n", pipes);
    static char buf[PAGE];
    if (fcntl(fds[1], F_SETFL, 0)) return 1;
    write(fds[1], buf, sizeof buf); /* blocks forever */
    return 1;
}

/* As many pipes as the descriptor limit allows, each grown to 1 MiB
 * (F_SETPIPE_SZ) and written until full; then says how much they hold.
 * The VMM keeps pipe bytes in its own memory, so it must refuse (a full
 * pipe's EAGAIN) long before they outgrow the guest's RAM. */
static int pipe_buffers(void) {
    struct rlimit rl = { 4096, 4096 };
    setrlimit(RLIMIT_NOFILE, &rl);
    static char buf[1 << 16];
    memset(buf, 'p', sizeof buf);
    unsigned long held = 0;
    int pipes = 0;
    for (; pipes < 2000; pipes++) {
        int fds[2];
        if (pipe2(fds, O_NONBLOCK)) break;
        fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
        ssize_t w;
        while ((w = write(fds[1], buf, sizeof buf)) > 0) held += w;
    }
    printf("pipes %d hold %lu MiB\n", pipes, held >> 20);
    return 0;
}

/* Sleeps forever. */
static _Noreturn int sleep_forever(void) {
    for (;;) pause();
}

/* Two processes each waiting to read what the other would write. */
static int deadlock(void) {
    int a[2], b[2];
    if (pipe(a) || pipe(b)) return 1;
    char c;
    if (fork() == 0) {
        read(a[0], &c, 1);
        write(b[1], &c, 1);
        _exit(0);
    }
    read(b[0], &c, 1);
    write(a[1], &c, 1);
    return 0;
}

/* A child that kills the first process (pausing forever) with
 * `sig`, then pauses too: the run ends as the first process did,
 * 128 + sig, as a shell reports it. */
static int kill_first(int sig) {
    pid_t first = getpid();
    if (fork() == 0) {
        kill(first, sig);
        for (;;) pause();
    }
    for (;;) pause();
}

/* Spins forever. */
static _Noreturn int spin(void) {
    for (;;) ;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    printf("hostile %s\n", mode);
    if (!strcmp(mode, "touch")) return touch_all();
    if (!strcmp(mode, "mremap")) return mremap_growth();
    if (!strcmp(mode, "fork")) return fork_bomb();
    if (!strcmp(mode, "stdout")) return stdout_flood();
    if (!strcmp(mode, "maps")) return many_vmas();
    if (!strcmp(mode, "pipes")) return full_pipes();
    if (!strcmp(mode, "pipebuf")) return pipe_buffers();
    if (!strcmp(mode, "forkmaps")) return fork_mappings();
    if (!strcmp(mode, "sleep")) return sleep_forever();
    if (!strcmp(mode, "deadlock")) return deadlock();
    if (!strcmp(mode, "spin")) return spin();
    if (!strcmp(mode, "killfirst")) return kill_first(SIGKILL);
    if (!strcmp(mode, "termfirst")) return kill_first(SIGTERM);
    printf("unknown mode\n");
    return 2;
}
