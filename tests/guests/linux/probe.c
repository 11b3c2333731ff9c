/* A static Linux program the tests build with `gcc -static` and run both
 * on the host and under `vmm run`: every line it prints must be the same
 * in both places (so it prints outcomes, never addresses or times). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

static void check(const char *what, int ok) { printf("%s: %s\n", what, ok ? "ok" : "FAILED"); }

int main(int argc, char **argv, char **envp) {
    printf("argc=%d\n", argc);
    for (int i = 1; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = envp; *e; e++)
        if (strncmp(*e, "PROBE_", 6) == 0) printf("env %s\n", *e);
    check("AT_PAGESZ", getauxval(AT_PAGESZ) == 4096);
    check("AT_RANDOM", getauxval(AT_RANDOM) != 0);
    check("AT_ENTRY", getauxval(AT_ENTRY) != 0);
    struct utsname u;
    check("uname", uname(&u) == 0 && strcmp(u.machine, "x86_64") == 0 && strcmp(u.sysname, "Linux") == 0);

    /* Lazy anonymous memory: 16 MiB written page by page, read back. */
    size_t len = 4 << 20;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("mmap", p != MAP_FAILED);
    int zero = 1;
    for (size_t i = 0; i < len; i += 4096) zero &= p[i] == 0;
    check("fresh memory reads zero", zero);
    for (size_t i = 0; i < len; i += 4096) p[i] = (unsigned char)(i >> 12);
    int same = 1;
    for (size_t i = 0; i < len; i += 4096) same &= p[i] == (unsigned char)(i >> 12);
    check("writes read back", same);
    /* mremap grows it (moving if it must) and keeps the data. */
    unsigned char *q = mremap(p, len, 2 * len, MREMAP_MAYMOVE);
    check("mremap", q != MAP_FAILED && q[4096 * 7] == 7 && q[len + 4096] == 0);
    check("munmap", munmap(q, 2 * len) == 0);
    /* MAP_FIXED_NOREPLACE over a mapping fails with EEXIST. */
    void *a = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *b = mmap(a, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    check("MAP_FIXED_NOREPLACE refuses", b == MAP_FAILED && errno == EEXIST);
    check("mprotect", mprotect(a, 4096, PROT_READ | PROT_WRITE) == 0);
    ((char *)a)[1] = 1;
    check("munmap again", munmap(a, 8192) == 0);
    /* Argument checks answer as Linux does. */
    errno = 0;
    check("mmap len 0 is EINVAL", mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == EINVAL);
    errno = 0;
    check("munmap unaligned is EINVAL", munmap((char *)a + 1, 4096) == -1 && errno == EINVAL);
    errno = 0;
    check("mmap of a bad fd is EBADF", mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 1000, 0) == MAP_FAILED && errno == EBADF);
    /* The heap: malloc of many small blocks and one big one. */
    char *big = malloc(4 << 20);
    check("malloc 4 MiB", big != NULL);
    memset(big, 0x5a, 4 << 20);
    check("big block holds", big[0] == 0x5a && big[(4 << 20) - 1] == 0x5a);
    free(big);
    /* A buffer grown with realloc: glibc moves large blocks with mremap. */
    size_t n = 1 << 16;
    unsigned char *g = malloc(n);
    for (size_t i = 0; i < n; i++) g[i] = (unsigned char)(i * 7);
    int grown = g != NULL;
    while (grown && n < (32u << 20)) {
        unsigned char *h = realloc(g, 2 * n);
        if (!h) { grown = 0; break; }
        g = h;
        for (size_t i = n; i < 2 * n; i++) g[i] = (unsigned char)(i * 7);
        n *= 2;
    }
    for (size_t i = 0; grown && i < n; i += 4093) grown &= g[i] == (unsigned char)(i * 7);
    check("realloc to 32 MiB keeps the data", grown);
    free(g);
    void *cur = sbrk(0);
    check("brk grows", sbrk(1 << 20) == cur && sbrk(0) == (char *)cur + (1 << 20));
    memset(cur, 1, 1 << 20);
    check("brk shrinks", sbrk(-(1 << 20)) != (void *)-1 && sbrk(0) == cur);
    unsigned char r[64];
    check("getrandom", getrandom(r, sizeof r, 0) == 64);
    struct rlimit rl;
    check("getrlimit", getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur > 0);
    /* RLIMIT_NOFILE bounds descriptor numbers, lowered and raised. */
    struct rlimit nf;
    int dups[16], opened = 0, err = 0;
    getrlimit(RLIMIT_NOFILE, &nf);
    struct rlimit low = { 8, nf.rlim_max };
    if (setrlimit(RLIMIT_NOFILE, &low) == 0)
        for (; opened < 16; opened++)
            if ((dups[opened] = dup(1)) < 0) { err = errno; break; }
    check("a lowered RLIMIT_NOFILE refuses descriptor 8", opened < 8 && err == EMFILE);
    for (int i = 0; i < opened; i++) close(dups[i]);
    opened = 0;
    if (setrlimit(RLIMIT_NOFILE, &nf) == 0)
        for (; opened < 16; opened++)
            if ((dups[opened] = dup(1)) < 0) break;
    check("a raised RLIMIT_NOFILE gives it again", opened == 16);
    for (int i = 0; i < opened; i++) close(dups[i]);
    /* A memfd: its pages are shared by read/write and every shared
     * mapping; a private mapping copies on write. */
    int mfd = memfd_create("probe", MFD_CLOEXEC);
    check("memfd_create", mfd >= 0 && ftruncate(mfd, 8192) == 0);
    char *ms = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    char *mp = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
    check("memfd maps", ms != MAP_FAILED && mp != MAP_FAILED);
    strcpy(ms, "shared");
    char mb[8] = {0};
    check("memfd read sees the mapping", pread(mfd, mb, 6, 0) == 6 && strcmp(mb, "shared") == 0);
    check("memfd write reaches the mapping", pwrite(mfd, "SH", 2, 0) == 2 && ms[0] == 'S' && mp[0] == 'S');
    mp[1] = 'x';
    check("private copy on write", mp[1] == 'x' && ms[1] == 'H');
    struct stat st;
    check("memfd fstat size", fstat(mfd, &st) == 0 && st.st_size == 8192);
    check("memfd close", munmap(ms, 8192) == 0 && munmap(mp, 8192) == 0 && close(mfd) == 0);
    /* Files in the in-memory /tmp. */
    int tf = open("/tmp/probe.txt", O_CREAT | O_RDWR | O_TRUNC, 0600);
    check("open /tmp", tf >= 0 && write(tf, "line\n", 5) == 5 && lseek(tf, 0, SEEK_SET) == 0);
    char tb[8] = {0};
    check("read /tmp", read(tf, tb, 8) == 5 && strcmp(tb, "line\n") == 0 && close(tf) == 0);
    check("unlink /tmp", unlink("/tmp/probe.txt") == 0 && open("/tmp/probe.txt", O_RDONLY) == -1 && errno == ENOENT);
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    int stack = 0;
    while (maps && fgets(line, sizeof line, maps)) stack |= strstr(line, "[stack]") != NULL;
    check("/proc/self/maps names the stack", stack);
    /* A bad pointer is EFAULT, not a crash. */
    void *volatile bad = (void *)16;
    check("write of a bad pointer is EFAULT", write(1, bad, 10) == -1 && errno == EFAULT);
    fflush(stdout);
    fprintf(stderr, "to stderr\n");
    const char *how = argc > 1 ? argv[1] : "";
    if (strcmp(how, "abort") == 0) abort();
    if (strcmp(how, "segv") == 0) *(volatile int *)8 = 1;
    if (strcmp(how, "exit") == 0) exit(42);
    return 0;
}
