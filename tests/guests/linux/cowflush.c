/* Copies the VMM makes for a system call must be seen at once: a read()
 * into a page the program had only read (the zero page, or after fork a
 * page shared with the other process) lands in a fresh copy, and the
 * program's next load must see the data, not the old page. Prints one
 * line per check; the same on Linux. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int into(volatile char *p, const char *msg) {
    int fds[2];
    if (pipe(fds)) return -1;
    size_t n = strlen(msg);
    if (write(fds[1], msg, n) != (ssize_t)n) return -1;
    if (read(fds[0], (char *)p, n) != (ssize_t)n) return -1;
    /* Compared before any other call: nothing else may have flushed. */
    int same = 1;
    for (size_t i = 0; i < n; i++) same &= p[i] == msg[i];
    close(fds[0]);
    close(fds[1]);
    return same ? 0 : 1;
}

int main(void) {
    long pg = sysconf(_SC_PAGESIZE);
    volatile char *p = mmap(0, 8 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 2;
    int sum = 0;
    for (int i = 0; i < 8; i++) sum += p[i * pg]; /* zero pages, walked */
    printf("zero page read first: %s\n", into(p, "hello") == 0 && sum == 0 ? "sees the data" : "STALE");
    for (int i = 1; i < 8; i++) p[i * pg] = 'a' + i;
    pid_t c = fork();
    if (c == 0) {
        int ok = 1;
        for (int i = 1; i < 8; i++) ok &= p[i * pg] == 'a' + i; /* shared, walked */
        for (int i = 1; i < 8; i++) ok &= into(p + i * pg, "child") == 0;
        _exit(ok ? 0 : 1);
    }
    int st;
    waitpid(c, &st, 0);
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("child's read into shared pages: %s\n", ok ? "sees the data" : "STALE");
    int mine = 1;
    for (int i = 1; i < 8; i++) mine &= p[i * pg] == 'a' + i;
    printf("parent's pages after the child's copies: %s\n", mine ? "its own" : "CHANGED");
    for (int i = 1; i < 8; i++) mine &= into(p + i * pg, "parent") == 0;
    printf("parent's read into once-shared pages: %s\n", mine ? "sees the data" : "STALE");
    return 0;
}
