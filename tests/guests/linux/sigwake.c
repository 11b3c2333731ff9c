/* Signals to a process parked in a blocking call: a pipe read, wait4,
 * pause and nanosleep are interrupted at once (EINTR after the handler;
 * a read with SA_RESTART is made again; nanosleep returns EINTR even
 * with SA_RESTART, with the time left), a default-fatal signal or
 * SIGKILL ends a parked or spinning process at once. Each child reports
 * through its exit status; prints what Linux prints. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int handled;
static void on_usr1(int s) { (void)s; handled++; }

static void handler(int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = flags;
    sigaction(SIGUSR1, &sa, NULL);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void nap(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void report(const char *what, pid_t c, double t0) {
    int st;
    waitpid(c, &st, 0);
    int quick = now() - t0 < 5.0;
    if (WIFEXITED(st)) printf("%s: exited %d quick %d\n", what, WEXITSTATUS(st), quick);
    else if (WIFSIGNALED(st)) printf("%s: signaled %d quick %d\n", what, WTERMSIG(st), quick);
}

/* Runs `body` in a child, sends it `sig` after 50 ms, reports. */
static void scenario(const char *what, int sig, int (*body)(int), int fd_w) {
    double t0 = now();
    pid_t c = fork();
    if (c == 0) _exit(body(0));
    nap(50);
    kill(c, sig);
    if (fd_w >= 0) { nap(50); write(fd_w, "x", 1); }
    report(what, c, t0);
}

static int p[2];

static int read_eintr(int x) {
    (void)x;
    handler(0);
    char b;
    int r = read(p[0], &b, 1);
    return (r == -1 && errno == EINTR) * 10 + handled;
}

static int read_restart(int x) {
    (void)x;
    handler(SA_RESTART);
    char b;
    int r = read(p[0], &b, 1);
    return (r == 1) * 10 + handled;
}

static int wait_eintr(int x) {
    (void)x;
    handler(0);
    pid_t g = fork();
    if (g == 0) { for (;;) pause(); }
    int st;
    int r = waitpid(g, &st, 0);
    int ok = r == -1 && errno == EINTR;
    kill(g, SIGKILL);
    waitpid(g, &st, 0);
    return ok * 10 + handled;
}

static int pause_eintr(int x) {
    (void)x;
    handler(0);
    int r = pause();
    return (r == -1 && errno == EINTR) * 10 + handled;
}

static int sleep_eintr(int x) {
    (void)x;
    handler(SA_RESTART);
    struct timespec ts = { 10, 0 }, rem = { 0, 0 };
    int r = nanosleep(&ts, &rem);
    int ok = r == -1 && errno == EINTR && rem.tv_sec < 10 && rem.tv_sec >= 8;
    return ok * 10 + handled;
}

static int clock_sleep_eintr(int x) {
    (void)x;
    handler(0);
    struct timespec ts = { 10, 0 }, rem = { 0, 0 };
    int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &rem);
    int ok = r == EINTR && rem.tv_sec < 10 && rem.tv_sec >= 8;
    return ok * 10 + handled;
}

static int sleep_long(int x) {
    (void)x;
    struct timespec ts = { 10, 0 };
    nanosleep(&ts, NULL);
    return 1;
}

static int read_long(int x) {
    (void)x;
    char b;
    read(p[0], &b, 1);
    return 1;
}

static int spin(int x) {
    (void)x;
    for (volatile int i = 0;; i++) {
    }
    return 1;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pipe(p);
    scenario("read, handler", SIGUSR1, read_eintr, -1);
    scenario("read, SA_RESTART", SIGUSR1, read_restart, p[1]);
    scenario("wait4, handler", SIGUSR1, wait_eintr, -1);
    scenario("pause, handler", SIGUSR1, pause_eintr, -1);
    scenario("nanosleep, SA_RESTART handler", SIGUSR1, sleep_eintr, -1);
    scenario("clock_nanosleep, handler", SIGUSR1, clock_sleep_eintr, -1);
    scenario("nanosleep, SIGTERM", SIGTERM, sleep_long, -1);
    scenario("read, SIGTERM", SIGTERM, read_long, -1);
    scenario("read, SIGKILL", SIGKILL, read_long, -1);
    scenario("spinning, SIGTERM", SIGTERM, spin, -1);
    /* A signal the child ignores by default leaves its sleep alone. */
    double t0 = now();
    pid_t c = fork();
    if (c == 0) {
        struct timespec ts = { 0, 300000000 };
        _exit(nanosleep(&ts, NULL) == 0 ? 4 : 5);
    }
    nap(50);
    kill(c, SIGCHLD);
    int st;
    waitpid(c, &st, 0);
    double took = now() - t0;
    printf("nanosleep, SIGCHLD ignored: exited %d slept it out %d\n", WEXITSTATUS(st), took > 0.29 && took < 5);
    /* Alone now: the real-time timer's SIGALRM ends a long sleep. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { { 0, 0 }, { 0, 100000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec ts = { 10, 0 }, rem = { 0, 0 };
    handled = 0;
    t0 = now();
    int r = nanosleep(&ts, &rem);
    printf("nanosleep, SIGALRM: eintr %d handled %d rem ok %d quick %d\n", r == -1 && errno == EINTR, handled,
           rem.tv_sec >= 9 && rem.tv_sec < 10, now() - t0 < 5);
    return 0;
}
