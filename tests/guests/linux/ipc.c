/* Pipes, socket pairs, vmsplice, poll and prctl, run on the host and
 * under `vmm run`: each scenario (argv[1]) prints what it saw;
 * tests/guests/linux_ipc.rs compares the two outputs and exit statuses.
 * Build: gcc -static -O1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_GET_MDWE 66
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

static void say(const char *what, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
}

static int fill(int w, size_t chunk) {
    static char buf[1 << 16];
    memset(buf, 'f', sizeof buf);
    long total = 0;
    for (;;) {
        ssize_t n = write(w, buf, chunk);
        if (n < 0)
            break;
        total += n;
    }
    printf("filled with %zu-byte writes: %ld then %s\n", chunk, total, strerrorname_np(errno));
    return 0;
}

static void pipes(void) {
    int p[2];
    say("pipe", pipe(p));
    struct stat st;
    fstat(p[0], &st);
    printf("fifo %d, rd %d, wr %d\n", S_ISFIFO(st.st_mode), fcntl(p[0], F_GETFL) & O_ACCMODE,
           fcntl(p[1], F_GETFL) & O_ACCMODE);
    say("size", fcntl(p[0], F_GETPIPE_SZ));
    struct iovec out[2] = {{"hello, ", 7}, {"world", 5}};
    say("writev", writev(p[1], out, 2));
    char a[4], b[32] = {0};
    struct iovec in[2] = {{a, 4}, {b, sizeof b}};
    say("readv", readv(p[0], in, 2));
    printf("got '%.4s' '%s'\n", a, b);
    say("write to the read end", write(p[0], "x", 1));
    say("read from the write end", read(p[1], b, 1));
    say("lseek", lseek(p[0], 0, SEEK_SET));
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    say("read empty", read(p[0], b, 1));
    fill(p[1], 1);
    say("setsize below the data", fcntl(p[1], F_SETPIPE_SZ, 4096));
    char big[1 << 16];
    while (read(p[0], big, sizeof big) > 0)
        ;
    fill(p[1], 3000);
    while (read(p[0], big, sizeof big) > 0)
        ;
    say("setsize 100000", fcntl(p[1], F_SETPIPE_SZ, 100000));
    fill(p[1], 4096);
    while (read(p[0], big, sizeof big) > 0)
        ;
    say("partial write", write(p[1], big, 0));
    say("setsize 1", fcntl(p[1], F_SETPIPE_SZ, 1));
    say("partial write of 6000", write(p[1], big, 6000));
    say("atomic write that does not fit", write(p[1], big, 100));
    int null = open("/dev/null", O_WRONLY);
    say("size of a file", fcntl(null, F_GETPIPE_SZ));
    close(null);
    int d = dup(p[1]);
    close(p[1]);
    while (read(p[0], big, sizeof big) > 0)
        ;
    say("read with a dup'd writer", read(p[0], b, 1));
    dup2(0, d);
    say("read with no writer", read(p[0], b, 1));
    close(p[0]);
    say("pipe2 bad flags", pipe2(p, O_APPEND));
    say("pipe2 direct", pipe2(p, O_DIRECT | O_CLOEXEC));
    printf("cloexec %d %d\n", fcntl(p[0], F_GETFD), fcntl(p[1], F_GETFD));
    write(p[1], "packet-one", 10);
    write(p[1], "packet-two", 10);
    memset(b, 0, sizeof b);
    say("packet read of 4", read(p[0], b, 4));
    say("next packet", read(p[0], b, sizeof b));
    printf("got '%.10s'\n", b);
}

static volatile int pipes_seen;
static void on_pipe(int s) { (void)s; pipes_seen++; }

static void sigpipe(void) {
    int p[2];
    pipe(p);
    close(p[0]);
    signal(SIGPIPE, on_pipe);
    say("write nothing", write(p[1], "", 0));
    say("write with no reader", write(p[1], "x", 1));
    printf("SIGPIPE seen %d\n", pipes_seen);
    signal(SIGPIPE, SIG_IGN);
    say("ignored", write(p[1], "x", 1));
    signal(SIGPIPE, SIG_DFL);
    printf("now the default action\n");
    fflush(stdout);
    write(p[1], "x", 1);
    printf("not reached\n");
}

static void sockets(void) {
    int s[2];
    char b[64] = {0};
    say("stream pair", socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    struct stat st;
    fstat(s[0], &st);
    printf("sock %d\n", S_ISSOCK(st.st_mode));
    say("send", send(s[0], "over the pair", 13, 0));
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    say("recvfrom 4", recvfrom(s[1], b, 4, 0, (struct sockaddr *)&from, &fl));
    printf("fromlen %u got '%.4s'\n", fl, b);
    say("peek", recv(s[1], b, sizeof b, MSG_PEEK));
    say("read", read(s[1], b, sizeof b));
    say("write back", write(s[1], "back", 4));
    say("recv", recv(s[0], b, sizeof b, 0));
    say("recv dontwait", recv(s[0], b, sizeof b, MSG_DONTWAIT));
    say("shutdown wr", shutdown(s[0], SHUT_WR));
    say("peer reads the end", recv(s[1], b, sizeof b, 0));
    say("send after shutdown", send(s[0], "x", 1, MSG_NOSIGNAL));
    say("the other way", send(s[1], "y", 1, 0));
    say("shutdown bad", shutdown(s[0], 7));
    say("sendto with an address", sendto(s[1], "z", 1, 0, (struct sockaddr *)&from, sizeof(sa_family_t) + 2));
    send(s[1], "unread", 6, 0);
    close(s[0]);
    say("after the peer closed with data unread", recv(s[1], b, sizeof b, 0));
    say("then", recv(s[1], b, sizeof b, 0));
    say("send to a closed peer", send(s[1], "x", 1, MSG_NOSIGNAL));
    close(s[1]);

    for (int t = 0; t < 2; t++) {
        int ty = t ? SOCK_SEQPACKET : SOCK_DGRAM;
        printf("-- %s\n", t ? "seqpacket" : "dgram");
        say("pair", socketpair(AF_UNIX, ty | SOCK_NONBLOCK, 0, s));
        struct iovec iov[2] = {{"abc", 3}, {"def", 3}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
        say("sendmsg", sendmsg(s[0], &m, 0));
        say("send empty", send(s[0], "", 0, 0));
        char r[4];
        struct iovec riov = {r, sizeof r};
        char ctl[64];
        struct msghdr rm = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
        say("recvmsg", recvmsg(s[1], &rm, 0));
        printf("'%.4s' flags trunc %d controllen %zu\n", r, !!(rm.msg_flags & MSG_TRUNC), rm.msg_controllen);
        say("empty datagram", recv(s[1], b, sizeof b, 0));
        say("none left", recv(s[1], b, sizeof b, 0));
        send(s[0], "0123456789", 10, 0);
        say("MSG_TRUNC", recv(s[1], b, 2, MSG_TRUNC));
        close(s[1]);
        say("send to a closed peer", send(s[0], "x", 1, MSG_NOSIGNAL));
        say("again", send(s[0], "x", 1, MSG_NOSIGNAL));
        close(s[0]);
    }
    say("inet pair", socketpair(AF_INET, SOCK_STREAM, 0, s));
    say("rdm pair", socketpair(AF_UNIX, SOCK_RDM, 0, s));
    say("shutdown a pipe", shutdown(0, SHUT_RD) < 0 && errno == ENOTSOCK ? 1 : 0);
}

static void splices(void) {
    int p[2];
    pipe(p);
    long pg = sysconf(_SC_PAGESIZE);
    char *mem = mmap(0, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(mem, 'v', 4 * pg);
    struct iovec iov = {mem, pg};
    say("vmsplice a page", vmsplice(p[1], &iov, 1, 0));
    char *back = malloc(pg);
    say("read it back", read(p[0], back, pg));
    printf("same %d\n", !memcmp(back, mem, pg));
    say("bad flags", vmsplice(p[1], &iov, 1, 0x10));
    int null = open("/dev/null", O_WRONLY);
    say("not a pipe", vmsplice(null, &iov, 1, 0));
    close(null);
    fcntl(p[1], F_SETPIPE_SZ, 2 * pg);
    /* Three pages touched, two slots: what the first two hold. */
    struct iovec odd = {mem + 100, 2 * pg};
    say("vmsplice over three pages into two slots", vmsplice(p[1], &odd, 1, SPLICE_F_NONBLOCK));
    say("full", vmsplice(p[1], &odd, 1, SPLICE_F_NONBLOCK));
    struct iovec out = {back, pg};
    say("vmsplice out", vmsplice(p[0], &out, 1, 0));
    say("zero segments", vmsplice(p[1], &out, 0, 0));
}

static void polls(void) {
    int p[2];
    pipe(p);
    struct pollfd f[3] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}, {99, POLLIN, 0}};
    say("poll", poll(f, 3, 0));
    printf("revents %#x %#x %#x\n", f[0].revents, f[1].revents, f[2].revents);
    write(p[1], "x", 1);
    say("poll after a write", poll(f, 2, 100));
    printf("revents %#x %#x\n", f[0].revents, f[1].revents);
    close(p[1]);
    say("poll after the writer closed", poll(f, 1, 0));
    printf("revents %#x\n", f[0].revents);
    int q[2];
    pipe(q);
    struct pollfd g = {q[0], POLLIN, 0};
    struct timespec ts = {0, 20 * 1000 * 1000};
    say("ppoll times out", ppoll(&g, 1, &ts, 0));
    close(q[0]);
    struct pollfd h = {q[1], POLLOUT, 0};
    say("poll a write end without reader", poll(&h, 1, 0));
    printf("revents %#x\n", h.revents);
    int s[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    struct pollfd k = {s[0], POLLIN | POLLOUT | POLLRDHUP, 0};
    say("poll a socket", poll(&k, 1, 0));
    printf("revents %#x\n", k.revents);
    close(s[1]);
    say("poll a socket whose peer closed", poll(&k, 1, 0));
    printf("revents %#x\n", k.revents);
}

static void show_comm(void) {
    char line[128];
    FILE *f = fopen("/proc/self/comm", "r");
    if (f && fgets(line, sizeof line, f))
        printf("comm: %s", line);
    if (f)
        fclose(f);
    f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Name:", 5))
            printf("status %s", line);
    if (f)
        fclose(f);
}

static void prctls(void) {
    char name[17] = {0};
    say("get name", prctl(PR_GET_NAME, name));
    printf("name '%s'\n", name);
    say("set name", prctl(PR_SET_NAME, "a-very-long-name-indeed"));
    memset(name, 'x', sizeof name);
    prctl(PR_GET_NAME, name);
    printf("name '%.16s' last %d\n", name, name[15]);
    show_comm();
    say("dumpable", prctl(PR_GET_DUMPABLE));
    say("set dumpable 0", prctl(PR_SET_DUMPABLE, 0));
    say("dumpable", prctl(PR_GET_DUMPABLE));
    say("set dumpable 2", prctl(PR_SET_DUMPABLE, 2));
    say("unknown option", prctl(999));
    say("mdwe", prctl(PR_GET_MDWE, 0, 0, 0, 0));
    say("mdwe no-inherit alone", prctl(PR_SET_MDWE, 2, 0, 0, 0));
    say("set mdwe", prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0));
    say("mdwe", prctl(PR_GET_MDWE, 0, 0, 0, 0));
    say("unset mdwe", prctl(PR_SET_MDWE, 0, 0, 0, 0));
    void *wx = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    say("mmap rwx", wx == MAP_FAILED ? -1 : 0);
    char *rw = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    say("mprotect rw to rx", mprotect(rw, 4096, PROT_READ | PROT_EXEC));
    say("mprotect rw to r", mprotect(rw, 4096, PROT_READ));
    char *rx = mmap(0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    say("mmap rx", rx == MAP_FAILED ? -1 : 0);
    say("mprotect rx to rx", mprotect(rx, 4096, PROT_READ | PROT_EXEC));
    say("mprotect rx to rwx", mprotect(rx, 4096, PROT_READ | PROT_WRITE | PROT_EXEC));
    say("mprotect rx to r", mprotect(rx, 4096, PROT_READ));
    say("mprotect r (was rx) to rx", mprotect(rx, 4096, PROT_READ | PROT_EXEC));
}

static int wpipe = -1;
static volatile int alarms;
static void on_alarm(int s) {
    (void)s;
    if (++alarms == 2)
        write(wpipe, "z", 1);
}

static void interrupted(void) {
    int p[2];
    pipe(p);
    wpipe = p[1];
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, 0);
    struct itimerval it = {{0, 30000}, {0, 30000}};
    setitimer(ITIMER_REAL, &it, 0);
    char c = 0;
    say("read interrupted", read(p[0], &c, 1));
    printf("alarms %d\n", alarms);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, 0);
    say("read restarted", read(p[0], &c, 1));
    printf("alarms %d got '%c'\n", alarms, c);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, 0);
}

static void deadlock(void) {
    int p[2];
    pipe(p);
    char c;
    printf("reading an empty pipe nobody else can write\n");
    fflush(stdout);
    read(p[0], &c, 1);
    printf("not reached\n");
}

int main(int argc, char **argv) {
    const char *w = argc > 1 ? argv[1] : "";
    if (!strcmp(w, "pipe"))
        pipes();
    else if (!strcmp(w, "sigpipe"))
        sigpipe();
    else if (!strcmp(w, "socketpair"))
        sockets();
    else if (!strcmp(w, "vmsplice"))
        splices();
    else if (!strcmp(w, "poll"))
        polls();
    else if (!strcmp(w, "prctl"))
        prctls();
    else if (!strcmp(w, "interrupted"))
        interrupted();
    else if (!strcmp(w, "deadlock"))
        deadlock();
    else {
        fprintf(stderr, "unknown scenario '%s'\n", w);
        return 2;
    }
    return 0;
}
