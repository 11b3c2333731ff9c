/* Priority-inheritance futexes: PTHREAD_PRIO_INHERIT mutexes contended
 * by 4 threads (an exact total), trylock and timedlock against a held
 * one, a robust PI mutex whose owner dies while another thread waits
 * (handed over with EOWNERDEAD); and the raw calls: TRYLOCK_PI on a
 * free word, LOCK_PI on one's own word (EDEADLK), on a dead thread's
 * (ESRCH), UNLOCK_PI by another (EPERM), FUTEX_WAKE on a word with PI
 * waiters (EINVAL), the hand-over writing the waiter's tid with
 * FUTEX_WAITERS, a signal that does not end the wait. Prints what Linux
 * prints. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FUTEX_WAKE 1
#define FUTEX_LOCK_PI 6
#define FUTEX_UNLOCK_PI 7
#define FUTEX_TRYLOCK_PI 8
#define FUTEX_WAITERS 0x80000000u
#define FUTEX_OWNER_DIED 0x40000000u

static const char *err(long r, int e) {
    if (r == 0) return "0";
    switch (e) {
    case EOWNERDEAD: return "EOWNERDEAD";
    case EBUSY: return "EBUSY";
    case EDEADLK: return "EDEADLK";
    case ESRCH: return "ESRCH";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EINTR: return "EINTR";
    default: return strerror(e);
    }
}
/* pthread calls return the error. */
static const char *perr(int r) { return err(r, r); }

static long futex(uint32_t *w, int op) { return syscall(SYS_futex, w, op, 0, NULL, NULL, 0); }
static uint32_t gettid32(void) { return (uint32_t)syscall(SYS_gettid); }

static void msleep(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void pi_init(pthread_mutex_t *m, int robust) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
    if (robust) pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

static pthread_mutex_t m;
static long counter;
static void *increment(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_lock(&m);
        long c = counter;
        if (i % 100 == 0) sched_yield(); /* others queue in the kernel */
        counter = c + 1;
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

static void *hold(void *arg) {
    pthread_mutex_lock(&m);
    msleep((int)(long)arg);
    pthread_mutex_unlock(&m);
    return NULL;
}

static pthread_mutex_t rm;
static void *hold_robust_and_die(void *arg) {
    (void)arg;
    pthread_mutex_lock(&rm);
    msleep(100);
    return NULL; /* dies holding it */
}

static uint32_t word;
static long waiter_ret;
static int waiter_errno;
static uint32_t word_seen_by_waiter;
static volatile int handled;
static void on_usr1(int s) {
    (void)s;
    handled++;
}
static void *lock_raw(void *arg) {
    (void)arg;
    waiter_ret = futex(&word, FUTEX_LOCK_PI);
    waiter_errno = errno;
    word_seen_by_waiter = word;
    if (waiter_ret == 0) futex(&word, FUTEX_UNLOCK_PI);
    return NULL;
}
static volatile int go;
static void *spin_then_lock(void *arg) {
    (void)arg;
    while (!go) {
    } /* a signal arrives meanwhile, with no system call to take it */
    waiter_ret = futex(&word, FUTEX_LOCK_PI);
    waiter_errno = errno;
    if (waiter_ret == 0) futex(&word, FUTEX_UNLOCK_PI);
    return NULL;
}

static void *own_tid(void *arg) {
    (void)arg;
    return (void *)(uintptr_t)gettid32();
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_t t[4];

    pi_init(&m, 0);
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, increment, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("pi mutex: counter %ld\n", counter);

    pthread_create(&t[0], NULL, hold, (void *)200L);
    msleep(30);
    printf("trylock held: %s\n", perr(pthread_mutex_trylock(&m)));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    printf("timedlock held: %s\n", perr(pthread_mutex_timedlock(&m, &ts)));
    printf("lock after the holder: %s\n", perr(pthread_mutex_lock(&m)));
    pthread_mutex_unlock(&m);
    pthread_join(t[0], NULL);

    pi_init(&rm, 1);
    pthread_create(&t[0], NULL, hold_robust_and_die, NULL);
    msleep(30);
    int r = pthread_mutex_lock(&rm);
    pthread_join(t[0], NULL);
    int c = r == EOWNERDEAD ? pthread_mutex_consistent(&rm) : -1;
    pthread_mutex_unlock(&rm);
    printf("robust pi, owner died while waited on: %s, consistent %d, relock %s\n", perr(r), c,
           perr(pthread_mutex_lock(&rm)));
    pthread_mutex_unlock(&rm);

    /* The raw calls. */
    uint32_t me = gettid32();
    long rr = futex(&word, FUTEX_TRYLOCK_PI);
    printf("trylock_pi free: %s, word is mine %d\n", err(rr, errno), word == me);
    rr = futex(&word, FUTEX_LOCK_PI);
    printf("lock_pi own: %s\n", err(rr, errno));
    pthread_create(&t[0], NULL, lock_raw, NULL);
    msleep(30);
    printf("waiter queued: word %s\n", word == (me | FUTEX_WAITERS) ? "mine|WAITERS" : "other");
    rr = futex(&word, FUTEX_WAKE);
    printf("wake on a pi word: %s\n", err(rr, errno));
    rr = futex(&word, FUTEX_UNLOCK_PI);
    printf("unlock_pi: %s\n", err(rr, errno));
    pthread_join(t[0], NULL);
    printf("waiter: %s, word then %s, word now %#x\n", err(waiter_ret, waiter_errno),
           (word_seen_by_waiter & FUTEX_WAITERS) && (word_seen_by_waiter & 0x3fffffff) != me ? "its tid|WAITERS"
                                                                                           : "other",
           word);

    /* UNLOCK_PI of a word another thread owns; a signal while waiting. */
    futex(&word, FUTEX_TRYLOCK_PI);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1; /* no SA_RESTART */
    sigaction(SIGUSR1, &sa, NULL);
    waiter_ret = -1;
    pthread_create(&t[0], NULL, lock_raw, NULL);
    msleep(30);
    pthread_kill(t[0], SIGUSR1);
    msleep(30);
    printf("signalled waiter: handled %d, still waiting %d\n", handled, waiter_ret == -1);
    futex(&word, FUTEX_UNLOCK_PI);
    pthread_join(t[0], NULL);
    printf("signalled waiter then: %s\n", err(waiter_ret, waiter_errno));

    /* A signal already pending when the lock is asked for. */
    futex(&word, FUTEX_TRYLOCK_PI);
    handled = 0;
    waiter_ret = -1;
    pthread_create(&t[0], NULL, spin_then_lock, NULL);
    msleep(20);
    pthread_kill(t[0], SIGUSR1);
    msleep(20);
    go = 1;
    msleep(30);
    futex(&word, FUTEX_UNLOCK_PI);
    pthread_join(t[0], NULL);
    printf("signal before the lock: handled %d, lock %s\n", handled, err(waiter_ret, waiter_errno));
    word = me + 1000000; /* no such thread */
    rr = futex(&word, FUTEX_LOCK_PI);
    printf("lock_pi no owner: %s\n", err(rr, errno));
    rr = futex(&word, FUTEX_UNLOCK_PI);
    printf("unlock_pi not mine: %s\n", err(rr, errno));
    /* A thread that ended: its tid is no owner. */
    void *dead;
    pthread_create(&t[0], NULL, own_tid, NULL);
    pthread_join(t[0], &dead);
    word = (uint32_t)(uintptr_t)dead;
    rr = futex(&word, FUTEX_LOCK_PI);
    printf("lock_pi dead owner: %s\n", err(rr, errno));
    word = FUTEX_OWNER_DIED;
    rr = futex(&word, FUTEX_LOCK_PI);
    printf("lock_pi owner died: %s, word %s\n", err(rr, errno), word == (me | FUTEX_OWNER_DIED) ? "mine|OWNER_DIED" : "other");
    return 0;
}
