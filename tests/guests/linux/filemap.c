/* mmap of files in /tmp and /dev/shm, run on the host and under
 * `vmm run`: shared and private mappings, writes through read/write and
 * through the mappings, SIGBUS past the end, truncation and hole
 * punching reaching the mappings, the open-mode rules. Each step prints
 * what it saw; tests/guests/linux_filemap.rs compares the two outputs.
 * Build: gcc -static -O1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096L

static sigjmp_buf env;
static volatile int got_sig, got_code;

static void on_fault(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_sig = sig;
    got_code = si->si_code;
    siglongjmp(env, 1);
}

/* The byte at p, or a report of the signal a load there raised. */
static void load(const char *what, volatile char *p) {
    got_sig = 0;
    if (sigsetjmp(env, 1) == 0) {
        char c = *p;
        printf("%s: '%c' (%d)\n", what, c ? c : '0', c);
    } else {
        printf("%s: signal %d code %d\n", what, got_sig, got_code);
    }
}

static void store(const char *what, volatile char *p, char v) {
    got_sig = 0;
    if (sigsetjmp(env, 1) == 0) {
        *p = v;
        printf("%s: stored\n", what);
    } else {
        printf("%s: signal %d code %d\n", what, got_sig, got_code);
    }
}

static void file_bytes(int fd, off_t at, int n) {
    char buf[64] = {0};
    ssize_t got = pread(fd, buf, n, at);
    printf("pread %ld+%d: %zd '", (long)at, n, got);
    for (ssize_t i = 0; i < got; i++)
        putchar(buf[i] ? buf[i] : '0');
    printf("'\n");
}

static void *map(size_t len, int prot, int flags, int fd, off_t off, const char *what) {
    void *p = mmap(0, len, prot, flags, fd, off);
    if (p == MAP_FAILED)
        printf("%s: mmap failed, errno %d\n", what, errno);
    else
        printf("%s: mapped\n", what);
    return p;
}

/* The permissions and path of the /proc/self/maps line at `p`. */
static void maps_line(void *p) {
    char want[32], line[512];
    snprintf(want, sizeof want, "%08lx-", (unsigned long)p);
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) {
        printf("maps: cannot open\n");
        return;
    }
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, want, strlen(want)))
            continue;
        char range[64], perms[8], off[32], dev[16], path[256] = "";
        unsigned long ino = 0;
        sscanf(line, "%63s %7s %31s %15s %lu %255s", range, perms, off, dev, &ino, path);
        /* Only the name's directory: the host's file name has the pid. */
        char *slash = strrchr(path, '/');
        if (slash)
            *slash = 0;
        printf("maps: %s offset %s dir %s inode %s\n", perms, off, path, ino ? "set" : "0");
    }
    fclose(f);
}

static void scenario(const char *dir) {
    char path[128];
    snprintf(path, sizeof path, "%s/vmm-filemap-%d", dir, (int)getpid());
    printf("== %s\n", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        printf("open: errno %d\n", errno);
        return;
    }
    pwrite(fd, "hello world", 11, 0);
    ftruncate(fd, 2 * PG);
    char *sh = map(3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0, "shared");
    char *pr = map(3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0, "private");
    if (sh == MAP_FAILED || pr == MAP_FAILED)
        return;
    maps_line(sh);
    maps_line(pr);
    printf("shared: %.11s private: %.11s\n", sh, pr);

    /* A store through the shared mapping is the file's at once. */
    memcpy(sh, "HELLO", 5);
    file_bytes(fd, 0, 11);
    /* A write() is seen by both mappings (the private one has no copy). */
    pwrite(fd, "abc", 3, 100);
    printf("after pwrite: shared %.3s private %.3s\n", sh + 100, pr + 100);
    /* A private store copies the page: the file and the shared mapping
     * keep theirs, and later writes no longer reach the copy. */
    store("private store", pr, 'p');
    printf("private %.5s shared %.5s\n", pr, sh);
    file_bytes(fd, 0, 5);
    pwrite(fd, "Z", 1, 0);
    printf("after pwrite Z: private %.5s shared %.5s\n", pr, sh);

    /* Whole pages past the end: SIGBUS in both. */
    load("shared page 2", sh + 2 * PG);
    load("private page 2", pr + 2 * PG);
    store("shared page 2", sh + 2 * PG, 'x');
    /* The end inside a page: the rest of that page reads zeros. */
    ftruncate(fd, PG + 10);
    load("shared 4096+5", sh + PG + 5);
    load("shared 4096+100", sh + PG + 100);
    store("private page 1", pr + PG + 1, 'q');
    /* Shrinking unmaps the pages past the end everywhere, private
     * copies too. */
    ftruncate(fd, 100);
    load("after shrink shared page 1", sh + PG + 1);
    load("after shrink private page 1", pr + PG + 1);
    load("after shrink private page 0", pr);
    load("after shrink shared 50", sh + 50);
    /* Growing again: zeros. */
    ftruncate(fd, 2 * PG);
    load("regrown shared page 1", sh + PG + 1);
    load("regrown private page 1", pr + PG + 1);

    /* A punched hole reads zeros through the shared mapping; the
     * private copy of page 0 stays. */
    memset(sh, 'x', 2 * PG);
    int r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PG);
    printf("punch: %d\n", r);
    load("punched shared 7", sh + 7);
    load("punched private 0", pr);
    load("unpunched shared page 1", sh + PG);
    file_bytes(fd, PG - 2, 4);

    /* The open mode limits what may be mapped. */
    int ro = open(path, O_RDONLY);
    int wo = open(path, O_WRONLY);
    map(PG, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0, "shared rw of O_RDONLY");
    map(PG, PROT_READ, MAP_SHARED, wo, 0, "shared r of O_WRONLY");
    map(PG, PROT_READ, MAP_PRIVATE, wo, 0, "private r of O_WRONLY");
    char *rs = map(PG, PROT_READ, MAP_SHARED, ro, 0, "shared r of O_RDONLY");
    if (rs != MAP_FAILED) {
        printf("mprotect rw: %d errno %d\n", mprotect(rs, PG, PROT_READ | PROT_WRITE), errno);
        maps_line(rs);
        munmap(rs, PG);
    }
    char *rp = map(PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0, "private rw of O_RDONLY");
    if (rp != MAP_FAILED) {
        rp[1] = 'R';
        printf("private of O_RDONLY: [1] %c, file:\n", rp[1]);
        file_bytes(fd, 0, 2);
        munmap(rp, PG);
    }
    errno = 0;
    map(PG, PROT_READ, MAP_SHARED, fd, 100, "unaligned offset");
    map(PG, PROT_READ, MAP_SHARED, fd, 8 * PG, "offset past the end");
    printf("msync: %d\n", msync(sh, PG, MS_SYNC));
    close(ro);
    close(wo);
    munmap(sh, 3 * PG);
    munmap(pr, 3 * PG);
    close(fd);
    unlink(path);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, 0);
    sigaction(SIGSEGV, &sa, 0);
    setvbuf(stdout, 0, _IONBF, 0);
    scenario("/tmp");
    scenario("/dev/shm");
    return 0;
}
