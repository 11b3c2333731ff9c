/* Hole punches seen from every process and every kind of shared object:
 * a child's MADV_REMOVE, fallocate(PUNCH_HOLE) or ftruncate of a memfd,
 * a SysV segment, a hugetlbfs memfd, a shared MAP_HUGETLB mapping and a
 * SHM_HUGETLB segment must take the pages out of the parent's mappings
 * too, while the private copies a private mapping made (the parent's, or
 * the caller's own) stay, as Linux's unmap_mapping_range without
 * even_cows keeps them. `punch huge` adds the hugetlb objects (run with
 * huge pages). Prints what it reads; run by tests/guests/linux_punch.rs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define P 4096UL
#define H (2UL << 20)
#define RW (PROT_READ | PROT_WRITE)

static sigjmp_buf jb;

static void on_bus(int sig)
{
	siglongjmp(jb, sig);
}

/* The byte at p, or -SIGBUS/-SIGSEGV when reading it faults. */
static int peek(volatile char *p)
{
	int sig = sigsetjmp(jb, 1);
	if (sig)
		return -sig;
	return *p;
}

/* A /proc/meminfo count ("HugePages_Free", "HugePages_Rsvd"). */
static long meminfo(const char *key)
{
	char line[256], want[64];
	long v = -1;
	snprintf(want, sizeof(want), "%s: %%ld", key);
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, want, &v) == 1)
			break;
	fclose(f);
	return v;
}

static long free_huge(void)
{
	return meminfo("HugePages_Free");
}

static long rsvd_huge(void)
{
	return meminfo("HugePages_Rsvd");
}

/* Runs fn(arg) in a child; returns after it ended. */
static void in_child(const char *what, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn(arg) ? 1 : 0);
	int st;
	waitpid(pid, &st, 0);
	printf("%s in a child: %s\n", what, WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "failed");
}

static int remove_first(void *p)
{
	return madvise(p, P, MADV_REMOVE);
}

static int remove_all3(void *p)
{
	return madvise(p, 3 * P, MADV_REMOVE);
}

static int remove_huge(void *p)
{
	return madvise(p, H, MADV_REMOVE);
}

static int fd_of_child;

static int punch_huge(void *unused)
{
	(void)unused;
	return fallocate(fd_of_child, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, H);
}

static int truncate_huge(void *unused)
{
	(void)unused;
	return ftruncate(fd_of_child, H);
}

static int punch_small(void *unused)
{
	(void)unused;
	return fallocate(fd_of_child, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, P, P);
}

static void memfd(void)
{
	int fd = memfd_create("punch", 0);
	char page[P];
	ftruncate(fd, 3 * P);
	for (int i = 0; i < 3; i++) {
		memset(page, 'A' + i, P);
		pwrite(fd, page, P, i * P);
	}
	char *sh = mmap(0, 3 * P, RW, MAP_SHARED, fd, 0);
	char *pr = mmap(0, 3 * P, RW, MAP_PRIVATE, fd, 0);
	pr[0] = 'x';                      /* a private copy of page 0 */
	printf("memfd private page 1 before: %c\n", pr[P]); /* the file's page, mapped */
	fd_of_child = fd;
	in_child("fallocate punch of page 1", punch_small, 0);
	printf("memfd after the punch: private %c %d %c, shared %d\n", pr[0], pr[P], pr[2 * P], sh[P]);
	pr[2 * P] = 'y';                  /* a private copy of page 2 */
	in_child("MADV_REMOVE of all", remove_all3, sh);
	printf("memfd after the remove: private %c %d %c, shared %d %d %d\n", pr[0], pr[P], pr[2 * P], sh[0], sh[P],
	       sh[2 * P]);
	/* The caller's own punch keeps its own private copies too. */
	memset(sh, 'B', P);
	pr[P] = 'z';
	printf("own remove: %d\n", madvise(sh, 3 * P, MADV_REMOVE));
	printf("memfd after its own remove: private %c %c %c, shared %d\n", pr[0], pr[P], pr[2 * P], sh[0]);
	munmap(sh, 3 * P);
	munmap(pr, 3 * P);
	close(fd);
}

static void sysv(int flags, size_t size, const char *what)
{
	int id = shmget(IPC_PRIVATE, 2 * size, IPC_CREAT | flags | 0600);
	if (id < 0) {
		printf("%s shmget: %s\n", what, strerror(errno));
		return;
	}
	char *a = shmat(id, 0, 0);
	long before = free_huge();
	a[0] = 'S';
	a[size] = 'T';
	long touched = free_huge();
	in_child("MADV_REMOVE of the first page", size == P ? remove_first : remove_huge, a);
	long back = free_huge() - touched;
	printf("%s: %d %c", what, peek(a), peek(a + size));
	if (size == H)
		printf(", pages back %ld (of %ld)", back, before - touched);
	printf("\n");
	shmdt(a);
	shmctl(id, IPC_RMID, 0);
}

static void huge_memfd(void)
{
	int fd = memfd_create("hpunch", MFD_HUGETLB);
	if (fd < 0 || ftruncate(fd, 2 * H)) {
		printf("hugetlb memfd: %s\n", strerror(errno));
		return;
	}
	char *sh = mmap(0, 2 * H, RW, MAP_SHARED, fd, 0);
	char *pr = mmap(0, 2 * H, RW, MAP_PRIVATE, fd, 0);
	sh[0] = 1;
	sh[H] = 2;
	printf("hugetlb memfd private before: %d %d\n", pr[0], pr[H]);
	pr[0] = 7; /* a private copy of page 0: a hugetlbfs punch drops it too */
	fd_of_child = fd;
	in_child("hugetlb punch of page 0", punch_huge, 0);
	printf("hugetlb memfd after the punch: shared %d %d, private %d %d\n", sh[0], sh[H], pr[0], pr[H]);
	pr[H] = 9; /* a private copy of page 1: a truncation drops it too */
	in_child("hugetlb truncation to one page", truncate_huge, 0);
	printf("hugetlb memfd after the truncation: shared %d %d, private %d %d\n", peek(sh), peek(sh + H), peek(pr),
	       peek(pr + H));
	munmap(sh, 2 * H);
	munmap(pr, 2 * H);
	close(fd);
}

/* A punch of pages never touched keeps their reservations; a touched
 * page's punch frees the page, whose reservation its fault consumed. */
static void huge_reservations(void)
{
	int fd = memfd_create("hrsv", MFD_HUGETLB);
	ftruncate(fd, 2 * H);
	long r0 = rsvd_huge();
	char *p = mmap(0, 2 * H, RW, MAP_SHARED, fd, 0);
	long mapped = rsvd_huge() - r0;
	fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, H);
	long punched = rsvd_huge() - r0;
	p[H] = 1;
	long touched = rsvd_huge() - r0;
	madvise(p + H, H, MADV_REMOVE);
	long removed = rsvd_huge() - r0;
	p[0] = 1;
	printf("hugetlb reservations: mapped %ld, untouched punched %ld, touched %ld, removed %ld, refaulted %ld\n",
	       mapped, punched, touched, removed, rsvd_huge() - r0);
	munmap(p, 2 * H);
	close(fd);
}

static void huge_anon(void)
{
	char *p = mmap(0, 2 * H, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED) {
		printf("shared MAP_HUGETLB: %s\n", strerror(errno));
		return;
	}
	p[0] = 5;
	p[H] = 6;
	printf("shared MAP_HUGETLB mremap: grown %s, duplicated %s\n",
	       mremap(p, 2 * H, 4 * H, MREMAP_MAYMOVE) == MAP_FAILED && errno == EINVAL ? "EINVAL" : "?",
	       mremap(p, 0, 2 * H, MREMAP_MAYMOVE) == MAP_FAILED && errno == EINVAL ? "EINVAL" : "?");
	long touched = free_huge();
	in_child("MADV_REMOVE of page 0", remove_huge, p);
	long back = free_huge() - touched;
	printf("shared MAP_HUGETLB: %d %d, pages back %ld\n", p[0], p[H], back);
	munmap(p, 2 * H);
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_bus};
	sigaction(SIGBUS, &sa, 0);
	sigaction(SIGSEGV, &sa, 0);
	setvbuf(stdout, 0, _IONBF, 0);
	memfd();
	sysv(0, P, "SysV segment");
	/* A segment whose size is not whole pages: its last page goes too. */
	int id = shmget(IPC_PRIVATE, 5000, IPC_CREAT | 0600);
	char *b = shmat(id, 0, 0);
	b[6000] = 7;
	int r = madvise(b + P, P, MADV_REMOVE);
	printf("5000-byte segment, its last page removed: %d, page 1 reads %d\n", r, b[6000]);
	shmdt(b);
	shmctl(id, IPC_RMID, 0);
	if (argc > 1 && !strcmp(argv[1], "huge")) {
		huge_memfd();
		huge_reservations();
		huge_anon();
		sysv(SHM_HUGETLB, H, "SHM_HUGETLB segment");
	}
	return 0;
}
