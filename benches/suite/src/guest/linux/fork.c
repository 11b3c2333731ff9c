/* Item 12 (fork): the cost of fork() in a process with 64 MiB written
 * in a 1 GiB private anonymous mapping, and of the parent's first write
 * to each of those pages afterwards (each a copy while the child lives).
 *
 * Usage: fork [N [R]]. N forks whose child calls _exit(0) at once, each
 * timed around fork() alone with CLOCK_MONOTONIC, the parent waiting
 * for each child; then R forks whose child waits on a pipe
 * while the parent writes one byte to each touched page (the pass
 * timed), then reads every page and exits 0 if it still saw the values
 * from before the fork. Everything is checked: the children's statuses,
 * the parent's and the children's views of the pages. Prints
 * "name value" lines, then "ok" if every check passed; exits 1 at the
 * first failed check. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAP_BYTES (1UL << 30)
#define TOUCHED (64UL << 20)
#define PAGE 4096UL
#define PAGES (TOUCHED / PAGE)
#define MAX_ROUNDS 9
#define MAX_FORKS 1000

static long long ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static unsigned char value(unsigned long page, int round) { return (unsigned char)(page * 7 + round * 31 + 1); }

static int fail(const char *what) {
    printf("FAILED %s\n", what);
    return 1;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20;
    int rounds = argc > 2 ? atoi(argv[2]) : 1;
    if (n < 1 || n > MAX_FORKS) return fail("N out of range");
    if (rounds < 1 || rounds > MAX_ROUNDS) return fail("R out of range");
    unsigned char *m = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return fail("mmap");
    for (unsigned long i = 0; i < PAGES; i++) m[i * PAGE] = value(i, 0);

    static long long t[MAX_FORKS];
    for (int k = 0; k < n; k++) {
        long long t0 = ns();
        pid_t c = fork();
        long long t1 = ns();
        if (c == 0) _exit(0);
        if (c < 0) return fail("fork");
        int st;
        if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return fail("child status");
        t[k] = t1 - t0;
    }
    qsort(t, n, sizeof t[0], cmp);

    long long cow[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        int p[2];
        if (pipe(p) != 0) return fail("pipe");
        pid_t c = fork();
        if (c < 0) return fail("fork");
        if (c == 0) {
            char b;
            close(p[1]);
            if (read(p[0], &b, 1) != 1) _exit(2);
            for (unsigned long i = 0; i < PAGES; i++)
                if (m[i * PAGE] != value(i, r)) _exit(3);
            _exit(0);
        }
        close(p[0]);
        long long t0 = ns();
        for (unsigned long i = 0; i < PAGES; i++) m[i * PAGE] = value(i, r + 1);
        cow[r] = ns() - t0;
        if (write(p[1], "x", 1) != 1) return fail("write");
        close(p[1]);
        int st;
        if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return fail("the child saw the parent's writes");
        for (unsigned long i = 0; i < PAGES; i++)
            if (m[i * PAGE] != value(i, r + 1)) return fail("the parent lost its writes");
    }
    qsort(cow, rounds, sizeof cow[0], cmp);

    printf("forks %d\n", n);
    printf("fork_ns_min %lld\n", t[0]);
    printf("fork_ns_median %lld\n", t[n / 2]);
    printf("cow_pages %lu\n", PAGES);
    printf("cow_ns_per_page_median %.1f\n", (double)cow[rounds / 2] / PAGES);
    printf("ok\n");
    return 0;
}
