/* Preemption: processes that never make a system call share the CPU
 * with the others. A parent sleeps while its child spins, and still
 * wakes to kill it; two spinning children both make progress (each
 * counts in a MAP_SHARED page); a parent that spins itself, waiting for
 * its spinning child's counter to move, sees it move. Prints what Linux
 * prints. */
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long *counters;

static void spin(int i) {
    for (;;) counters[i]++;
}

static void report(const char *what, int st) {
    if (WIFEXITED(st)) printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) printf("%s: signaled %d\n", what, WTERMSIG(st));
    else printf("%s: other %#x\n", what, st);
}

static void nap(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    counters = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int st;
    /* A sleeping parent gets the CPU back from a spinning child. */
    pid_t c = fork();
    if (c == 0) spin(0);
    nap(50);
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    report("spinner", st);
    printf("spinner ran: %d\n", counters[0] > 0);
    /* Two spinners both progress, and keep progressing. */
    pid_t a = fork();
    if (a == 0) spin(1);
    pid_t b = fork();
    if (b == 0) spin(2);
    nap(100);
    unsigned long a0 = counters[1], b0 = counters[2];
    nap(100);
    unsigned long a1 = counters[1], b1 = counters[2];
    printf("both ran: %d\n", a0 > 0 && b0 > 0);
    printf("both still run: %d\n", a1 > a0 && b1 > b0);
    kill(a, SIGKILL);
    kill(b, SIGKILL);
    waitpid(a, &st, 0);
    report("first", st);
    waitpid(b, &st, 0);
    report("second", st);
    /* The parent spins too, with no system call, until the child's
     * counter has moved well past where it was. */
    unsigned long start = counters[3];
    c = fork();
    if (c == 0) spin(3);
    while (counters[3] < start + 1000000) {
    }
    printf("spinning parent saw the child run: 1\n");
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    report("third", st);
    return 0;
}
