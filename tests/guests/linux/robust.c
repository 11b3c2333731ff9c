/* Robust futexes: a robust mutex whose owner dies (a thread's exit, a
 * process's exit, SIGKILL, a fault) is handed to the next locker with
 * EOWNERDEAD, with and without a waiter already blocked; the same
 * through hand-built lists (words owned by others untouched, a cyclic
 * list, a pending unlock's wake); get_robust_list and set_robust_list's
 * checks. Prints what Linux prints. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FUTEX_WAIT 0
#define FUTEX_OWNER_DIED 0x40000000u
#define FUTEX_WAITERS 0x80000000u

static const char *err(int e) {
    switch (e) {
    case 0: return "0";
    case EOWNERDEAD: return "EOWNERDEAD";
    case EBUSY: return "EBUSY";
    case ENOTRECOVERABLE: return "ENOTRECOVERABLE";
    case EINVAL: return "EINVAL";
    case ESRCH: return "ESRCH";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return strerror(e);
    }
}

static void msleep(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void robust_init(pthread_mutex_t *m, int pshared) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (pshared) pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

/* Locks an owner-dead mutex back into use: EOWNERDEAD, consistent,
 * unlock, then an ordinary lock. */
static void recover(const char *what, pthread_mutex_t *m, int r) {
    int c = -1, again = -1;
    if (r == EOWNERDEAD) {
        c = pthread_mutex_consistent(m);
        pthread_mutex_unlock(m);
        again = pthread_mutex_lock(m);
        pthread_mutex_unlock(m);
    }
    printf("%s: %s, consistent %d, relocked %s\n", what, err(r), c, again < 0 ? "-" : err(again));
}

static pthread_mutex_t tm;
static void *hold_and_exit(void *arg) {
    pthread_mutex_lock(&tm);
    if (arg) msleep(100); /* the main thread blocks on it meanwhile */
    return NULL;
}

/* A thread's own list, built by hand: the word sits 8 bytes after each
 * entry's link. */
struct entry {
    struct entry *next;
    uint32_t word;
    uint32_t pad;
};
struct head {
    struct entry *list;
    long offset;
    struct entry *pending;
};
static struct head h;
static struct entry e_mine, e_other, e_waiters;
static struct entry cyc1, cyc2;
static struct head hc;
static struct entry pend;
static struct head hp;

static void *raw_list(void *arg) {
    (void)arg;
    uint32_t me = (uint32_t)syscall(SYS_gettid);
    e_mine.word = me;
    e_other.word = me + 1000;
    e_waiters.word = me | FUTEX_WAITERS;
    h.list = &e_mine;
    e_mine.next = &e_other;
    e_other.next = &e_waiters;
    e_waiters.next = (struct entry *)&h;
    h.offset = 8;
    h.pending = NULL;
    printf("raw: set %ld\n", syscall(SYS_set_robust_list, &h, sizeof h));
    return NULL;
}

static void *cyclic_list(void *arg) {
    (void)arg;
    uint32_t me = (uint32_t)syscall(SYS_gettid);
    cyc1.word = me;
    cyc2.word = me;
    hc.list = &cyc1;
    cyc1.next = &cyc2;
    cyc2.next = &cyc1; /* never back at the head */
    hc.offset = 8;
    syscall(SYS_set_robust_list, &hc, sizeof hc);
    return NULL;
}

static void *pending_unlock(void *arg) {
    (void)arg;
    pend.word = 0; /* an unlock freed it, then the thread died */
    hp.list = (struct entry *)&hp;
    hp.offset = 8;
    hp.pending = &pend;
    syscall(SYS_set_robust_list, &hp, sizeof hp);
    msleep(100); /* the main thread waits on the word meanwhile */
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_t t;

    /* A thread dies holding it; nobody waits. */
    robust_init(&tm, 0);
    pthread_create(&t, NULL, hold_and_exit, NULL);
    pthread_join(t, NULL);
    recover("thread died", &tm, pthread_mutex_lock(&tm));

    /* A thread dies holding it while the main thread waits. */
    pthread_create(&t, NULL, hold_and_exit, (void *)1);
    msleep(20);
    int r = pthread_mutex_lock(&tm);
    pthread_join(t, NULL);
    recover("thread died, waiter", &tm, r);

    /* A non-robust mutex stays held. */
    {
        pthread_mutex_t plain;
        pthread_mutex_init(&plain, NULL);
        pid_t c = fork();
        if (c == 0) {
            pthread_mutex_lock(&plain);
            _exit(0);
        }
        waitpid(c, NULL, 0);
        /* The child's copy was locked, not ours. */
        printf("plain after a child's lock: %s\n", err(pthread_mutex_trylock(&plain)));
    }

    /* Process-shared, in shared memory. */
    pthread_mutex_t *sm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    robust_init(sm, 1);
    int st;
    pid_t c = fork();
    if (c == 0) {
        pthread_mutex_lock(sm);
        _exit(3);
    }
    waitpid(c, &st, 0);
    recover("child exited", sm, pthread_mutex_lock(sm));

    int p[2];
    pipe(p);
    c = fork();
    if (c == 0) {
        pthread_mutex_lock(sm);
        write(p[1], "x", 1);
        pause();
        _exit(0);
    }
    char b;
    read(p[0], &b, 1);
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    printf("killed child: signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    recover("child killed", sm, pthread_mutex_lock(sm));

    /* A holder killed while another process waits on the lock. */
    c = fork();
    if (c == 0) {
        pthread_mutex_lock(sm);
        write(p[1], "x", 1);
        pause();
        _exit(0);
    }
    read(p[0], &b, 1);
    pid_t w = fork();
    if (w == 0) {
        int r2 = pthread_mutex_lock(sm);
        if (r2 == EOWNERDEAD) pthread_mutex_consistent(sm);
        pthread_mutex_unlock(sm);
        _exit(r2 == EOWNERDEAD ? 7 : 1);
    }
    msleep(50);
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    waitpid(w, &st, 0);
    printf("waiter in another process: exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    /* A holder that faults. */
    c = fork();
    if (c == 0) {
        pthread_mutex_lock(sm);
        *(volatile int *)8 = 1;
        _exit(0);
    }
    waitpid(c, &st, 0);
    printf("faulting child: signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    recover("child faulted", sm, pthread_mutex_lock(sm));

    /* Hand-built lists. */
    pthread_create(&t, NULL, raw_list, NULL);
    pthread_join(t, NULL);
    uint32_t other = e_other.word;
    printf("raw: mine %#x, waiters %#x, other's unchanged %d\n", e_mine.word, e_waiters.word,
           other != 0 && (other & FUTEX_OWNER_DIED) == 0);

    pthread_create(&t, NULL, cyclic_list, NULL);
    pthread_join(t, NULL);
    printf("cyclic: %#x %#x\n", cyc1.word, cyc2.word);

    pthread_create(&t, NULL, pending_unlock, NULL);
    msleep(20);
    struct timespec two = {2, 0};
    long fr = syscall(SYS_futex, &pend.word, FUTEX_WAIT, 0, &two, NULL, 0);
    pthread_join(t, NULL);
    printf("pending unlock woke the waiter: %s\n", fr == 0 ? "0" : err(errno));

    /* The calls themselves. */
    void *head = NULL;
    size_t len = 0;
    long g = syscall(SYS_get_robust_list, 0, &head, &len);
    printf("get_robust_list: %ld len %zu head set %d\n", g, len, head != NULL);
    long bad = syscall(SYS_set_robust_list, head, len - 1);
    printf("set_robust_list bad len: %s\n", bad == 0 ? "0" : err(errno));
    bad = syscall(SYS_get_robust_list, 999999, &head, &len);
    printf("get_robust_list no thread: %s\n", bad == 0 ? "0" : err(errno));
    return 0;
}
