/* /proc/PID/{status,stat,maps,cmdline,comm} of other processes: a
 * sleeping child (named with PR_SET_NAME, a mapping of its own), the
 * caller through its own pid, a zombie, an unknown pid (ENOENT at open)
 * and a reaped one (ESRCH at read). Prints facts that hold on any
 * Linux, not raw values (pids and sizes differ). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MARK ((void *)0x5a5a0000000UL)

static char buf[65536];

/* Reads the whole file into buf; its length, or -errno. */
static long slurp(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    long n = 0, r;
    while ((r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) n += r;
    int e = errno;
    close(fd);
    if (r < 0) return -e;
    buf[n] = 0;
    return n;
}

static long field(const char *text, const char *name) {
    const char *p = strstr(text, name);
    return p ? atol(p + strlen(name)) : -1;
}

/* A hex field (signal sets: the run's own ignored signals may add bits,
 * so callers look at the bits they set). */
static unsigned long hex(const char *text, const char *name) {
    const char *p = strstr(text, name);
    return p ? strtoul(p + strlen(name), NULL, 16) : 0;
}

static char *path(int pid, const char *file) {
    static char p[64];
    snprintf(p, sizeof p, "/proc/%d/%s", pid, file);
    return p;
}

/* The fields after "(comm) " of a stat line, 1-based as proc(5) counts. */
static int stat_fields(char *line, char *comm, char **f) {
    char *open = strchr(line, '('), *close = strrchr(line, ')');
    if (!open || !close) return 0;
    *close = 0;
    strcpy(comm, open + 1);
    int n = 2;
    for (char *t = strtok(close + 2, " \n"); t && n < 60; t = strtok(NULL, " \n")) f[++n] = t;
    return n;
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t me = getpid();
    int p[2], q[2];
    pipe(p);
    pipe(q);
    pid_t c = fork();
    if (c == 0) {
        prctl(PR_SET_NAME, "kid-process", 0, 0, 0);
        void *m = mmap(MARK, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (m != MARK) _exit(9);
        memset(m, 1, 3 * 4096);
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGUSR1);
        sigprocmask(SIG_BLOCK, &s, NULL);
        signal(SIGUSR2, SIG_IGN);
        write(q[1], "r", 1);
        char b;
        read(p[0], &b, 1);
        _exit(3);
    }
    char b;
    read(q[0], &b, 1);
    usleep(50000); /* the child is in its read */

    long n = slurp(path(c, "status"));
    printf("status: read %d name %d state %d pid %d ppid %d vmrss %d sigblk %d sigign %d\n", n > 0,
           strstr(buf, "Name:\tkid-process\n") != NULL, strstr(buf, "State:\tS (sleeping)\n") != NULL,
           field(buf, "\nPid:\t") == c, field(buf, "\nPPid:\t") == me, field(buf, "\nVmRSS:\t") > 0,
           (hex(buf, "\nSigBlk:\t") >> 9 & 1) == 1, (hex(buf, "\nSigIgn:\t") >> 11 & 1) == 1);

    n = slurp(path(c, "stat"));
    char comm[64] = "", *f[64] = {0};
    int nf = n > 0 ? stat_fields(buf, comm, f) : 0;
    printf("stat: fields %d comm %s state %s ppid %d pgrp %d session %d threads %s vsize %d rss %d\n", nf, comm,
           nf > 3 ? f[3] : "?", nf > 4 && atol(f[4]) == me, nf > 5 && atol(f[5]) == getpgrp(),
           nf > 6 && atol(f[6]) == getsid(0), nf > 20 ? f[20] : "?", nf > 23 && atol(f[23]) > 0,
           nf > 24 && atol(f[24]) > 0);

    n = slurp(path(c, "comm"));
    printf("comm: %s", n > 0 ? buf : "(none)\n");

    static char mine[4096];
    long m = slurp("/proc/self/cmdline");
    memcpy(mine, buf, m > 0 ? m : 0);
    n = slurp(path(c, "cmdline"));
    printf("cmdline: same as the parent's %d\n", n > 0 && n == m && memcmp(mine, buf, n) == 0);

    n = slurp(path(c, "maps"));
    int child_has = n > 0 && strstr(buf, "5a5a0000000-5a5a0003000 rw-p 00000000 00:00 0") != NULL;
    slurp("/proc/self/maps");
    printf("maps: the child's mapping in its maps %d, not in the parent's %d\n", child_has,
           strstr(buf, "5a5a0000000-") == NULL);

    /* The caller through its own pid is /proc/self. */
    static char self_status[8192];
    slurp("/proc/self/status");
    strcpy(self_status, buf);
    slurp(path(me, "status"));
    printf("own pid: status name as self %d state R %d\n",
           strncmp(self_status, buf, strchr(buf, '\n') - buf) == 0, strstr(buf, "State:\tR (running)\n") != NULL);
    slurp(path(me, "stat"));
    nf = stat_fields(buf, comm, f);
    printf("own pid: stat pid %d state %s\n", atol(buf) == me, nf > 3 ? f[3] : "?");

    /* Unknown pid. */
    n = slurp("/proc/999999/status");
    printf("unknown pid: %s\n", n == -ENOENT ? "ENOENT" : "other");

    /* A zombie: the child ends; WNOWAIT leaves it unreaped. */
    write(p[1], "x", 1);
    siginfo_t si;
    waitid(P_PID, c, &si, WEXITED | WNOWAIT);
    n = slurp(path(c, "status"));
    printf("zombie status: state Z %d no VmRSS %d name %d\n", strstr(buf, "State:\tZ (zombie)\n") != NULL,
           strstr(buf, "VmRSS") == NULL, strstr(buf, "Name:\t") != NULL);
    n = slurp(path(c, "stat"));
    nf = stat_fields(buf, comm, f);
    printf("zombie stat: state %s vsize %s rss %s\n", nf > 3 ? f[3] : "?", nf > 23 ? f[23] : "?",
           nf > 24 ? f[24] : "?");
    printf("zombie cmdline: %ld bytes\n", slurp(path(c, "cmdline")));
    printf("zombie maps: %ld bytes\n", slurp(path(c, "maps")));

    /* Open, reap, read: ESRCH. */
    int fd = open(path(c, "stat"), O_RDONLY);
    int st;
    waitpid(c, &st, 0);
    long r = read(fd, buf, sizeof buf);
    printf("reaped: open %d read %s exit %d\n", fd >= 0, r < 0 && errno == ESRCH ? "ESRCH" : "other",
           WEXITSTATUS(st));
    close(fd);
    n = slurp(path(c, "status"));
    printf("reaped: open %s\n", n == -ENOENT ? "ENOENT" : "other");
    return 0;
}
