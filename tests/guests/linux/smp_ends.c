/* Processes that end while their threads spin on other CPUs, over and
 * over: each round forks a child that starts two spinning threads,
 * touches a megabyte and then spins itself (killed by the parent with
 * SIGKILL), faults (SIGSEGV) or exits with the round's number; the
 * parent checks each status. Argument: the rounds (100). Prints
 * "rounds N bad 0 parent's count 0" where every status was right and no
 * child's thread ever ran in the parent. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* The children's spinners count here; the parent's copy must stay 0 (a
 * spinner that ran on in the parent's address space would count it). */
static volatile long spins;

static void *spin(void *a) {
    volatile long *p = a;
    for (;;) (*p)++;
    return NULL;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 100, bad = 0;
    volatile long *ready = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (int r = 0; r < rounds; r++) {
        pid_t c = fork();
        if (c == 0) {
            pthread_t t;
            pthread_create(&t, NULL, spin, (void *)&spins);
            pthread_create(&t, NULL, spin, (void *)&spins);
            char *m = malloc(1 << 20);
            for (int i = 0; i < (1 << 20); i += 4096) m[i] = 1;
            ready[0]++;
            if (r % 3 == 0)
                for (;;) {
                }
            if (r % 3 == 1) *(volatile int *)0 = 1;
            exit(r % 256);
        }
        if (r % 3 == 0) {
            while (ready[0] <= r) {
            }
            kill(c, SIGKILL);
        }
        int st;
        waitpid(c, &st, 0);
        int ok = r % 3 == 0   ? WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL
                 : r % 3 == 1 ? WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV
                              : WIFEXITED(st) && WEXITSTATUS(st) == r % 256;
        if (!ok) {
            printf("round %d: status %#x\n", r, st);
            bad++;
        }
    }
    printf("rounds %d bad %d parent's count %ld\n", rounds, bad, spins);
    return 0;
}
