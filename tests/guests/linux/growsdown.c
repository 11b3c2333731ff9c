/* MAP_GROWSDOWN stacks: a thread running on one grows it by faulting
 * below it; a mapping within the stack guard gap (256 pages) below
 * stops the growth with SIGSEGV; RLIMIT_STACK bounds it; smaps shows
 * "gd"; new mappings keep clear of the gap; mprotect's PROT_GROWSDOWN
 * extends the range to the stack's start, and is EINVAL on a mapping
 * that does not grow down. Prints what it sees; run by
 * tests/guests/linux_growsdown.rs. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define P 4096UL
#define GAP (256 * P)
#define RW (PROT_READ | PROT_WRITE)
#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif

static const char *mapped(void *r)
{
	if (r != MAP_FAILED)
		return "ok";
	return errno == EINVAL ? "EINVAL" : strerror(errno);
}

static char *low_mark;

/* Recurses until its frame is below low_mark. */
static __attribute__((noinline)) long dive(long depth)
{
	volatile char pad[512];
	pad[0] = (char)depth;
	if ((char *)pad < low_mark)
		return depth + pad[0] * 0;
	return dive(depth + 1) + pad[0] * 0;
}

static void *run(void *arg)
{
	(void)arg;
	dive(0);
	return 0;
}

/* Maps a stack of `mapped` bytes at the top of a free `reserve`-byte
 * range, returns its lowest mapped address. */
static char *stack_at_top(size_t reserve, size_t mapped)
{
	char *r = mmap(0, reserve, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(r, reserve);
	char *s = mmap(r + reserve - mapped, mapped, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED, -1, 0);
	return s == MAP_FAILED ? 0 : s;
}

/* In a child: a thread on a stack of `size` bytes whose top `mapped`
 * bytes are mapped dives to `depth` bytes below the top; `guard` maps a
 * page that far below the top first. Returns how the child ended. */
static const char *grow(size_t size, size_t mapped, size_t depth, long guard)
{
	pid_t pid = fork();
	if (pid == 0) {
		char *low = stack_at_top(GAP + size, mapped);
		char *top = low + mapped;
		if (guard >= 0)
			mmap(top - guard, P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		low_mark = top - depth;
		pthread_attr_t a;
		pthread_t t;
		pthread_attr_init(&a);
		pthread_attr_setstack(&a, top - size, size);
		if (pthread_create(&t, &a, run, 0))
			_exit(3);
		pthread_join(t, 0);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	static char out[64];
	if (WIFEXITED(st))
		snprintf(out, sizeof(out), "exit %d", WEXITSTATUS(st));
	else
		snprintf(out, sizeof(out), "signal %d", WTERMSIG(st));
	return out;
}

static void show_flags(void *p)
{
	char line[512], want[32];
	int in = 0;
	snprintf(want, sizeof(want), "%lx-", (unsigned long)p);
	FILE *f = fopen("/proc/self/smaps", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, want, strlen(want)))
			in = 1;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			printf("stack VmFlags has gd: %d\n", strstr(line, " gd") != 0);
			break;
		}
	}
	if (f)
		fclose(f);
}

int main(void)
{
	setvbuf(stdout, 0, _IONBF, 0);
	printf("grows 64 KiB from 16: %s\n", grow(256 * 1024, 16 * 1024, 64 * 1024, -1));
	printf("grows 200 KiB from 128: %s\n", grow(256 * 1024, 128 * 1024, 200 * 1024, -1));
	printf("a page 64 KiB below the top: %s\n", grow(256 * 1024, 16 * 1024, 64 * 1024, 64 * 1024));
	printf("a page 1 MiB + 128 KiB below, dive to 64 KiB: %s\n",
	       grow(2048 * 1024, 16 * 1024, 64 * 1024, GAP + 128 * 1024));
	printf("the same, dive to 256 KiB: %s\n", grow(2048 * 1024, 16 * 1024, 256 * 1024, GAP + 128 * 1024));
	struct rlimit rl = {.rlim_cur = 64 * 1024, .rlim_max = RLIM_INFINITY};
	setrlimit(RLIMIT_STACK, &rl);
	printf("RLIMIT_STACK 64 KiB, dive to 32 KiB: %s\n", grow(256 * 1024, 16 * 1024, 32 * 1024, -1));
	printf("RLIMIT_STACK 64 KiB, dive to 128 KiB: %s\n", grow(256 * 1024, 16 * 1024, 128 * 1024, -1));
	rl.rlim_cur = 8 << 20;
	setrlimit(RLIMIT_STACK, &rl);

	char *s = stack_at_top(GAP + 64 * P, 4 * P);
	show_flags(s);
	/* Touch below: the stack grows in this thread too. */
	s[-3 * (long)P] = 1;
	char *now = s - 3 * P;
	show_flags(now);
	/* PROT_GROWSDOWN from a page inside: down to the stack's start. */
	int r = mprotect(now + 2 * P, P, PROT_READ | PROT_GROWSDOWN);
	FILE *f = fopen("/proc/self/maps", "r");
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3 && a <= (unsigned long)now && (unsigned long)now < b)
			printf("PROT_GROWSDOWN: %d, the stack's first pages now %s, %lu pages\n", r, perms, (b - a) / P);
	}
	fclose(f);
	char *plain = mmap(0, 2 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("PROT_GROWSDOWN on a plain mapping: %s\n",
	       mprotect(plain + P, P, PROT_READ | PROT_GROWSDOWN) ? strerror(errno) : "ok");
	printf("PROT_GROWSUP: %s\n", mprotect(plain, P, PROT_READ | PROT_GROWSUP) ? strerror(errno) : "ok");
	/* Only private anonymous memory may grow down. */
	int fd = memfd_create("gd", 0);
	ftruncate(fd, P);
	int zero = open("/dev/zero", O_RDWR);
	printf("MAP_GROWSDOWN: shared %s, memfd %s, /dev/zero %s, droppable %s\n",
	       mapped(mmap(0, P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0)),
	       mapped(mmap(0, P, RW, MAP_PRIVATE | MAP_GROWSDOWN, fd, 0)),
	       mapped(mmap(0, P, RW, MAP_PRIVATE | MAP_GROWSDOWN, zero, 0)),
	       mapped(mmap(0, P, RW, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0)));
	/* A sealed stack still grows (expand_downwards ignores seals). */
	char *sealed = stack_at_top(GAP + 16 * P, 2 * P);
	long sr = syscall(462, sealed, 2 * P, 0);
	pid_t pid = fork();
	if (pid == 0) {
		sealed[-2 * (long)P] = 1;
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	printf("sealed stack (mseal %ld) grows: %s\n", sr, WIFEXITED(st) && !WEXITSTATUS(st) ? "yes" : "no");
	/* A hint inside the gap below a stack is not taken. */
	char *hinted = stack_at_top(GAP + 16 * P, P);
	char *h = mmap(hinted - 4 * P, P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("hint inside the gap honoured: %d\n", h == hinted - 4 * P);
	printf("mprotect of length 0 with unknown bits: %d\n", mprotect(hinted, 0, 0x100));
	/* A new mapping keeps clear of the gap below the stack. */
	char *top_stack = stack_at_top(GAP + 2 * GAP, P);
	char *m = mmap(0, P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("a new mapping right below the stack's gap: %d\n", m + P <= top_stack - GAP);
	return 0;
}
