/* waitid: id types, options, the siginfo Linux writes (also for WNOHANG
 * with nothing ready and for errors), WNOWAIT peeking, errors. Prints
 * what Linux prints. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void show(const char *what, int r, siginfo_t *si) {
    printf("%s: r=%d errno=%s signo=%d code=%d pid0=%d uid=%d status=%d errno_field=%d\n", what, r,
           r < 0 ? strerrorname_np(errno) : "-", si->si_signo, si->si_code, si->si_pid == 0, (int)si->si_uid,
           si->si_status, si->si_errno);
}

/* The raw call: glibc's waitid wrapper is this one. */
static int wid(int type, int id, siginfo_t *si, int opts) {
    return (int)syscall(SYS_waitid, type, id, si, opts, NULL);
}

static void fill(siginfo_t *si) { memset(si, 0x5a, sizeof *si); }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    siginfo_t si;
    int r;
    /* No children at all. */
    fill(&si); errno = 0; r = wid(P_ALL, 0, &si, WEXITED); show("no children", r, &si);
    fill(&si); errno = 0; r = wid(P_ALL, 0, &si, 0); show("no options", r, &si);
    fill(&si); errno = 0; r = wid(P_ALL, 0, &si, WEXITED | 0x100); show("bad option", r, &si);
    fill(&si); errno = 0; r = wid(7, 0, &si, WEXITED); show("bad idtype", r, &si);
    fill(&si); errno = 0; r = wid(P_PID, 0, &si, WEXITED); show("pid 0", r, &si);
    fill(&si); errno = 0; r = wid(P_PID, -3, &si, WEXITED); show("pid -3", r, &si);
    fill(&si); errno = 0; r = wid(P_PGID, -1, &si, WEXITED); show("pgid -1", r, &si);
    fill(&si); errno = 0; r = wid(P_PIDFD, -1, &si, WEXITED); show("pidfd -1", r, &si);
    fill(&si); errno = 0; r = wid(P_PIDFD, 1, &si, WEXITED); show("pidfd stdout", r, &si);
    fill(&si); errno = 0; r = wid(P_PIDFD, 900, &si, WEXITED); show("pidfd closed", r, &si);
    errno = 0; r = wid(P_ALL, 0, (siginfo_t *)8, WEXITED); printf("bad infop: r=%d errno=%s\n", r, strerrorname_np(errno));

    /* An exited child, peeked with WNOWAIT, then reaped. */
    int pfd[2];
    pipe(pfd);
    pid_t c = fork();
    if (c == 0) { char b; read(pfd[0], &b, 1); _exit(5); }
    fill(&si); errno = 0; r = wid(P_PID, c, &si, WEXITED | WNOHANG); show("nohang nothing yet", r, &si);
    fill(&si); errno = 0; r = wid(P_PID, c, &si, WSTOPPED | WNOHANG); show("nohang stopped only", r, &si);
    write(pfd[1], "x", 1);
    fill(&si); errno = 0; r = wid(P_PID, c, &si, WEXITED | WNOWAIT); show("nowait", r, &si);
    printf("nowait pid right %d\n", si.si_pid == c);
    fill(&si); errno = 0; r = wid(P_PID, c, &si, WSTOPPED | WCONTINUED | WNOHANG); show("zombie, exited not asked", r, &si);
    fill(&si); errno = 0; r = wid(P_ALL, 0, &si, WEXITED); show("reaped", r, &si);
    printf("reaped pid right %d\n", si.si_pid == c);
    fill(&si); errno = 0; r = wid(P_PID, c, &si, WEXITED | WNOHANG); show("gone", r, &si);

    /* A killed child, by its group (0: the caller's, and the group id). */
    c = fork();
    if (c == 0) { for (;;) pause(); }
    kill(c, SIGKILL);
    fill(&si); errno = 0; r = wid(P_PGID, 0, &si, WEXITED); show("killed, my group", r, &si);
    printf("killed pid right %d\n", si.si_pid == c);
    c = fork();
    if (c == 0) { setpgid(0, 0); _exit(9); }
    /* The child may not have moved yet: wait for it by pid, peeking,
     * then by its own group. */
    wid(P_PID, c, &si, WEXITED | WNOWAIT);
    fill(&si); errno = 0; r = wid(P_PGID, getpgrp(), &si, WEXITED | WNOHANG); show("other group, mine", r, &si);
    fill(&si); errno = 0; r = wid(P_PGID, c, &si, WEXITED); show("other group, its", r, &si);
    /* A segfaulting child and a blocking wait for any child. */
    c = fork();
    if (c == 0) { usleep(5000); *(volatile int *)8 = 1; _exit(0); }
    fill(&si); errno = 0; r = wid(P_ALL, 0, &si, WEXITED); show("segv", r, &si);
    /* A NULL infop: allowed. */
    c = fork();
    if (c == 0) _exit(1);
    errno = 0; r = wid(P_PID, c, NULL, WEXITED); printf("null infop: r=%d\n", r);
    /* glibc's waitid. */
    c = fork();
    if (c == 0) _exit(2);
    fill(&si); errno = 0; r = waitid(P_PID, c, &si, WEXITED); show("libc waitid", r, &si);
    return 0;
}
