/* Two threads that each do the same fixed amount of arithmetic in user
 * mode (no system call inside the work), timed from before the first
 * pthread_create to after the last pthread_join with CLOCK_MONOTONIC.
 * Prints threads, work per thread, the elapsed ns, each thread's result
 * checked against one computed alone first (so the work was all done),
 * then "ok". Argument: the iterations per thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define THREADS 2

static long iters;
static unsigned long result[THREADS];

static unsigned long work(unsigned long seed) {
    unsigned long x = seed;
    for (long k = 0; k < iters; k++) x = x * 6364136223846793005UL + 1442695040888963407UL;
    return x;
}

static void *run(void *arg) {
    long i = (long)arg;
    result[i] = work((unsigned long)i + 1);
    return NULL;
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    iters = argc > 1 ? atol(argv[1]) : 100000000L;
    pthread_t t[THREADS];
    long long t0 = now_ns();
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, run, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    long long ns = now_ns() - t0;
    for (long i = 0; i < THREADS; i++) {
        if (result[i] != work((unsigned long)i + 1)) {
            printf("FAILED thread %ld computed %lu\n", i, result[i]);
            return 1;
        }
    }
    printf("threads %d\niterations %ld\nelapsed_ns %lld\nok\n", THREADS, iters, ns);
    return 0;
}
