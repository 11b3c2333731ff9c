/* Threads: pthread create/join with results through shared memory, a
 * mutex contended by 4 threads, a condvar producer/consumer, a thread
 * exiting while others run, tgkill to one thread, fork from a
 * multithreaded process, futex timeouts and EAGAIN, two threads that
 * make no system call sharing the CPU (each with its own TLS). Prints
 * what Linux prints. "exitgroup" as argument: a non-leader thread's exit() ends the
 * whole process (status 42) while the others wait. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* linux/futex.h's values (musl-gcc has no kernel headers). */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_WAIT_BITSET 9
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_CLOCK_REALTIME 256
#define FUTEX_WAIT_PRIVATE (FUTEX_WAIT | FUTEX_PRIVATE_FLAG)
#define FUTEX_WAKE_PRIVATE (FUTEX_WAKE | FUTEX_PRIVATE_FLAG)
#define FUTEX_WAIT_BITSET_PRIVATE (FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG)
#define FUTEX_BITSET_MATCH_ANY 0xffffffff

static long futex(int *uaddr, int op, int val, const struct timespec *ts, int *uaddr2, int val3) {
    return syscall(SYS_futex, uaddr, op, val, ts, uaddr2, val3);
}

static int shared_word;
static void *square(void *arg) {
    long v = (long)arg;
    shared_word += (int)v; /* joined one at a time: no race */
    return (void *)(v * v);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static void *increment(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&lock);
        long c = counter;
        if (i % 1000 == 0) sched_yield();
        counter = c + 1;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static pthread_cond_t nonempty = PTHREAD_COND_INITIALIZER, nonfull = PTHREAD_COND_INITIALIZER;
static int queue[4], qlen, qhead;
static void *producer(void *arg) {
    (void)arg;
    for (int i = 1; i <= 1000; i++) {
        pthread_mutex_lock(&lock);
        while (qlen == 4) pthread_cond_wait(&nonfull, &lock);
        queue[(qhead + qlen) % 4] = i;
        qlen++;
        pthread_cond_signal(&nonempty);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static volatile int stop_spinning;
static volatile long spins;
static void *short_lived(void *arg) {
    (void)arg;
    while (spins < 100) sched_yield();
    pthread_exit((void *)7);
}
static void *spinner(void *arg) {
    (void)arg;
    while (!stop_spinning) {
        spins++;
        sched_yield();
    }
    return (void *)1L;
}

static volatile pid_t handler_tid;
static volatile int handled;
static void on_usr1(int sig) {
    (void)sig;
    handler_tid = (pid_t)syscall(SYS_gettid);
    handled = 1;
}
static volatile pid_t target_tid;
static void *signal_target(void *arg) {
    (void)arg;
    target_tid = (pid_t)syscall(SYS_gettid);
    while (!handled) sched_yield();
    return (void *)(long)(handler_tid == target_tid);
}

static void *sleeper(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}
static void *exiter(void *arg) {
    (void)arg;
    usleep(10000);
    printf("non-leader exits the group\n");
    exit(42);
}

static volatile int usr2_count;
static void on_usr2(int sig) {
    (void)sig;
    usr2_count++;
}
static int fword;
static volatile int futex_waiting;
static void *futex_waiter(void *arg) {
    struct timespec ts = { 10, 0 };
    futex_waiting = 1;
    long r = futex(&fword, FUTEX_WAIT_PRIVATE, 0, arg ? &ts : NULL, NULL, 0);
    return (void *)(r == 0 ? 0L : (long)errno);
}
/* A waiter on fword gets SIGUSR2 (flags: its sigaction's), then a wake;
 * what its futex call returned (0 or the errno). */
static long signal_a_waiter(int flags, int timed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    pthread_t w;
    void *r;
    futex_waiting = 0;
    pthread_create(&w, NULL, futex_waiter, timed ? (void *)1 : NULL);
    while (!futex_waiting) sched_yield();
    usleep(50000);
    pthread_kill(w, SIGUSR2);
    usleep(50000);
    futex(&fword, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(w, &r);
    return (long)r;
}
static const char *errname(long e) {
    return e == 0 ? "0" : e == EINTR ? "EINTR" : e == ETIMEDOUT ? "ETIMEDOUT" : "other";
}

static void *late_exit(void *arg) {
    (void)arg;
    usleep(20000);
    exit(3);
}

static volatile int detached_done;
static pthread_mutex_t detached_lock = PTHREAD_MUTEX_INITIALIZER;
static void *detached(void *arg) {
    (void)arg;
    pthread_mutex_lock(&detached_lock);
    detached_done++;
    pthread_mutex_unlock(&detached_lock);
    return NULL; /* musl unmaps its own stack, then exits */
}

static int threads_line(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Threads:", 8)) n = atoi(line + 8);
    fclose(f);
    return n;
}

/* Spins without a system call until the main thread, spinning too, has
 * seen it run: only preemption lets either go on. Whether its own TLS
 * (through its FS base) held across the switches. */
static volatile int spin_stage;
static __thread volatile int mine;
static void *no_calls(void *arg) {
    (void)arg;
    mine = 2;
    spin_stage = 1;
    while (spin_stage != 2) {
    }
    return (void *)(long)(mine == 2);
}

static void *idle(void *arg) {
    while (!*(volatile int *)arg) sched_yield();
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_t t[4];
    void *r;
    if (argc > 1 && !strcmp(argv[1], "exitgroup")) {
        pthread_t a, b;
        pthread_create(&a, NULL, sleeper, NULL);
        pthread_create(&b, NULL, exiter, NULL);
        pthread_join(a, NULL);
        printf("not reached\n");
        return 1;
    }

    /* create/join, results through memory */
    long sum = 0;
    for (long i = 1; i <= 4; i++) {
        pthread_create(&t[0], NULL, square, (void *)i);
        pthread_join(t[0], &r);
        sum += (long)r;
    }
    printf("join: squares %ld shared %d\n", sum, shared_word);
    printf("ids: pid==tid in main %d\n", getpid() == (pid_t)syscall(SYS_gettid));

    /* a contended mutex */
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, increment, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("mutex: counter %ld\n", counter);

    /* condvar producer/consumer */
    pthread_create(&t[0], NULL, producer, NULL);
    long got = 0, in_order = 1, last = 0;
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&lock);
        while (qlen == 0) pthread_cond_wait(&nonempty, &lock);
        int v = queue[qhead];
        qhead = (qhead + 1) % 4;
        qlen--;
        pthread_cond_signal(&nonfull);
        pthread_mutex_unlock(&lock);
        got += v;
        if (v != last + 1) in_order = 0;
        last = v;
    }
    pthread_join(t[0], NULL);
    printf("condvar: sum %ld in order %ld\n", got, in_order);

    /* one thread exits while another keeps running */
    pthread_create(&t[0], NULL, spinner, NULL);
    pthread_create(&t[1], NULL, short_lived, NULL);
    pthread_join(t[1], &r);
    printf("exited early: %ld\n", (long)r);
    long at_join = spins;
    while (spins < at_join + 100) sched_yield();
    stop_spinning = 1;
    pthread_join(t[0], &r);
    printf("spinner kept running: %ld\n", (long)r);

    /* tgkill to one thread: its handler runs on that thread */
    signal(SIGUSR1, on_usr1);
    pthread_create(&t[0], NULL, signal_target, NULL);
    while (!target_tid) sched_yield();
    pthread_kill(t[0], SIGUSR1);
    pthread_join(t[0], &r);
    printf("tgkill: handled on the target %ld, not main %d\n", (long)r, handler_tid != getpid());

    /* fork from a multithreaded process: one thread in the child */
    int go = 0;
    pthread_create(&t[0], NULL, idle, &go);
    printf("threads before fork %d\n", threads_line());
    pid_t c = fork();
    if (c == 0) {
        printf("child threads %d pid==tid %d\n", threads_line(), getpid() == (pid_t)syscall(SYS_gettid));
        _exit(5);
    }
    int st;
    waitpid(c, &st, 0);
    printf("child exited %d\n", WEXITSTATUS(st));
    go = 1;
    pthread_join(t[0], NULL);
    printf("threads after join %d\n", threads_line());

    /* detached threads: nobody joins them, they free their own stacks */
    pthread_attr_t da;
    pthread_attr_init(&da);
    pthread_attr_setdetachstate(&da, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < 50; i++) {
        pthread_t d;
        pthread_create(&d, &da, detached, NULL);
        if (i % 10 == 0) usleep(1000);
    }
    for (;;) {
        pthread_mutex_lock(&detached_lock);
        int n = detached_done;
        pthread_mutex_unlock(&detached_lock);
        if (n == 50) break;
        sched_yield();
    }
    usleep(10000);
    printf("detached threads ran: %d\n", detached_done);

    /* a child whose leader exits first: its parent's wait sees the end of
     * the group (the last thread's exit_group status); a SIGKILL to a
     * child ends all its threads */
    c = fork();
    if (c == 0) {
        pthread_t x;
        pthread_create(&x, NULL, late_exit, NULL);
        pthread_exit(NULL);
    }
    pid_t w = waitpid(c, &st, 0);
    printf("leader exited first: waited %d status %d\n", w == c, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    c = fork();
    if (c == 0) {
        pthread_t x;
        pthread_create(&x, NULL, sleeper, NULL);
        for (;;) pause();
    }
    usleep(20000);
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    printf("killed group: signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);

    /* futex: a value that differs, a relative timeout, an absolute one */
    int word = 1;
    long e = futex(&word, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
    printf("futex differs: %ld %s\n", e, errno == EAGAIN ? "EAGAIN" : strerror(errno));
    struct timespec rel = { 0, 50 * 1000 * 1000 }, t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    e = futex(&word, FUTEX_WAIT_PRIVATE, 1, &rel, NULL, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    printf("futex timeout: %ld %s waited %d\n", e, errno == ETIMEDOUT ? "ETIMEDOUT" : strerror(errno), ms >= 50);
    struct timespec abs;
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_nsec += 30 * 1000 * 1000;
    if (abs.tv_nsec >= 1000000000) { abs.tv_sec++; abs.tv_nsec -= 1000000000; }
    e = futex(&word, FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, 1, &abs, NULL, FUTEX_BITSET_MATCH_ANY);
    printf("futex absolute: %ld %s\n", e, errno == ETIMEDOUT ? "ETIMEDOUT" : strerror(errno));
    e = futex(&word, FUTEX_WAIT_BITSET_PRIVATE, 1, &abs, NULL, 0);
    printf("futex zero bitset: %ld %s\n", e, errno == EINVAL ? "EINVAL" : strerror(errno));
    e = futex(&word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    printf("futex wake nobody: %ld\n", e);

    /* a signal to a waiter: an untimed wait is EINTR, or restarted by an
     * SA_RESTART handler; a timed one is EINTR either way */
    long a = signal_a_waiter(0, 0);
    long b = signal_a_waiter(SA_RESTART, 0);
    long d = signal_a_waiter(SA_RESTART, 1);
    printf("futex signaled: %s, restarted %s, timed %s, handled %d\n", errname(a), errname(b), errname(d), usr2_count);

    /* a shared futex between processes: the child waits, the parent wakes */
    int *sw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    *sw = 0;
    c = fork();
    if (c == 0) {
        long w = futex(sw, FUTEX_WAIT, 0, NULL, NULL, 0);
        _exit(w == 0 ? 0 : 1);
    }
    long woke = 0;
    for (int i = 0; i < 2000 && woke == 0; i++) {
        woke = futex(sw, FUTEX_WAKE, 1, NULL, NULL, 0);
        if (!woke) usleep(1000);
    }
    waitpid(c, &st, 0);
    printf("shared futex: woke %ld child exited %d\n", woke, WEXITSTATUS(st));

    /* two threads of one process that make no system call share the CPU */
    mine = 1;
    pthread_create(&t[0], NULL, no_calls, NULL);
    while (spin_stage != 1) {
    }
    int main_tls = mine == 1;
    spin_stage = 2;
    pthread_join(t[0], &r);
    printf("spinning threads: main's tls %d the other's tls %ld\n", main_tls, (long)r);
    return 0;
}
