/* Threads and processes on several CPUs (run with 2 or more): two
 * threads that make no system call meet and report their CPUs (two
 * different ones: they ran at once); a thread spinning on a page that
 * another thread, on another CPU, replaces (MAP_FIXED) and then unmaps
 * sees the new page and then the fault (the TLB shootdown reached its
 * CPU); a child process whose other thread spins on another CPU when
 * its main thread exits, and one killed while it spins, both reaped
 * with the right status; a contended mutex across 4 threads. Prints
 * what Linux prints (the CPU line on a host with 2 or more CPUs). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static unsigned cpu_of(void) {
    unsigned c = 99;
    syscall(SYS_getcpu, &c, NULL, NULL);
    return c;
}

static volatile int here[2], done[2];
static unsigned seen[2];
static void *meet(void *arg) {
    long me = (long)arg;
    here[me] = 1;
    while (!here[1 - me]) {
    } /* no system call: only another CPU can set it */
    seen[me] = cpu_of();
    done[me] = 1;
    while (!done[1 - me]) {
    }
    return NULL;
}

static volatile int *page;
static volatile int started, faulted;
static volatile long reads;
static sigjmp_buf out;
static void on_segv(int s) {
    (void)s;
    faulted = 1;
    siglongjmp(out, 1);
}
static void *reader(void *arg) {
    (void)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, NULL);
    int saw_new = 0;
    if (sigsetjmp(out, 1) == 0) {
        started = 1;
        /* No system call: the page's new contents and its end reach this
         * CPU only through the shootdown. */
        for (long i = 0; i < 4000000000L; i++) {
            int v = *page;
            reads++;
            if (v == 2) saw_new = 1;
        }
    }
    printf("reader: saw the new page %d, faulted after the unmap %d\n", saw_new, faulted);
    return NULL;
}

static void *spin_forever(void *arg) {
    (void)arg;
    for (;;) {
    }
    return NULL;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static void *add(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    printf("at least two cpus: %d\n", CPU_COUNT(&set) >= 2);

    pthread_t t[4];
    pthread_create(&t[0], NULL, meet, (void *)0);
    pthread_create(&t[1], NULL, meet, (void *)1);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    printf("ran at once on two cpus: %d\n", seen[0] != seen[1] && seen[0] < 64 && seen[1] < 64);

    page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *page = 1;
    pthread_create(&t[0], NULL, reader, NULL);
    while (!started || reads < 1000000) {
    }
    /* A new page over the old one, then written: the reader must see it. */
    int *fresh = mmap((void *)page, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    *fresh = 2;
    long at = reads;
    while (reads < at + 1000000) {
    }
    munmap((void *)page, 4096);
    pthread_join(t[0], NULL);

    /* A child whose other thread spins on another CPU: its exit ends it. */
    pid_t c = fork();
    if (c == 0) {
        pthread_t s;
        pthread_create(&s, NULL, spin_forever, NULL);
        usleep(20000);
        exit(3);
    }
    int st;
    waitpid(c, &st, 0);
    printf("child with a spinning thread: exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    /* A child that spins on another CPU, killed. */
    c = fork();
    if (c == 0) spin_forever(NULL);
    usleep(20000);
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    printf("spinning child killed: signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);

    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, add, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("mutex across cpus: %ld\n", counter);
    return 0;
}
