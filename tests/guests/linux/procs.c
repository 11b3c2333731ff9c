/* Processes: fork + wait, copy-on-write isolation both ways, MAP_SHARED
 * anonymous memory shared, exit statuses and signals, vfork, a bounded
 * fork bomb. Prints what Linux prints. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int value = 1;

static void report(const char *what, int st) {
    if (WIFEXITED(st)) printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) printf("%s: signaled %d\n", what, WTERMSIG(st));
    else printf("%s: other %#x\n", what, st);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && !strcmp(argv[1], "bomb")) {
        static pid_t kids[2000];
        int n = 0, reaped = 0, st;
        struct rlimit rl = { 100, 100 };
        setrlimit(RLIMIT_NPROC, &rl);
        for (;;) {
            pid_t p = fork();
            if (p < 0) { printf("fork failed: %s\n", errno == EAGAIN ? "EAGAIN" : strerror(errno)); break; }
            if (p == 0) { pause(); _exit(0); }
            kids[n] = p;
            if (++n >= 2000) { printf("no bound\n"); break; }
        }
        for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
        while (wait(&st) > 0) reaped++;
        printf("bounded: %d reaped all: %d\n", n < 2000, reaped == n);
        return 0;
    }
    char *priv = malloc(1 << 20);
    memset(priv, 'p', 1 << 20);
    int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    *shared = 0;
    pid_t me = getpid();
    pid_t c = fork();
    if (c == 0) {
        printf("child: parent ok %d\n", getppid() == me);
        value = 2;
        priv[4096] = 'c';
        *shared = 42;
        _exit(7);
    }
    int st = 0;
    pid_t w = waitpid(c, &st, 0);
    printf("waited right child %d\n", w == c);
    report("child", st);
    printf("parent value %d priv %c shared %d\n", value, priv[4096], *shared);
    /* The parent writes after the fork: the child keeps its own view. */
    c = fork();
    if (c == 0) {
        usleep(20000);
        _exit(priv[8192] == 'p' ? 0 : 1);
    }
    priv[8192] = 'P';
    waitpid(c, &st, 0);
    report("isolated", st);
    c = fork();
    if (c == 0) { for (;;) pause(); }
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    report("killed", st);
    c = fork();
    if (c == 0) { *(volatile int *)8 = 1; _exit(0); }
    waitpid(c, &st, 0);
    report("segv", st);
    c = vfork();
    if (c == 0) _exit(3);
    waitpid(c, &st, 0);
    report("vfork", st);
    errno = 0;
    int r = waitpid(-1, &st, WNOHANG);
    printf("no children: %d %s\n", r, strerror(errno));
    c = fork();
    if (c == 0) { usleep(10000); _exit(0); }
    printf("nohang: %d\n", waitpid(c, &st, WNOHANG));
    waitpid(c, &st, 0);
    report("slept", st);
    return 0;
}
