/* mremap with an old size of 0: Linux makes a second mapping of the same
 * pages of a shared mapping (the "duplicate shm area" case), refuses a
 * private one (EINVAL), needs MREMAP_MAYMOVE or MREMAP_FIXED to place it
 * (ENOMEM), and leaves the source as it was. Prints what it sees; run by
 * tests/guests/linux_mremap_dup.rs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define P 4096UL
#define RW (PROT_READ | PROT_WRITE)

static const char *err(void *r)
{
	if (r != MAP_FAILED)
		return "ok";
	switch (errno) {
	case EINVAL:
		return "EINVAL";
	case ENOMEM:
		return "ENOMEM";
	case EFAULT:
		return "EFAULT";
	case EPERM:
		return "EPERM";
	default:
		return strerror(errno);
	}
}

/* The line of /proc/self/maps that starts at p, without its inode
 * columns: start-end perms offset. */
static void maps_line(const char *what, void *p)
{
	char line[512], want[32];
	snprintf(want, sizeof(want), "%lx-", (unsigned long)p);
	FILE *f = fopen("/proc/self/maps", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, want, strlen(want)))
			continue;
		unsigned long s, e, off;
		char perms[8];
		sscanf(line, "%lx-%lx %7s %lx", &s, &e, perms, &off);
		printf("%s: %lu pages %s offset %lu pages\n", what, (e - s) / P, perms, off / P);
	}
	if (f)
		fclose(f);
}

int main(void)
{
	setvbuf(stdout, 0, _IONBF, 0);
	/* A shared anonymous mapping: the copy maps the same pages. */
	char *a = mmap(0, 4 * P, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < 4; i++)
		a[i * P] = 'a' + i;
	char *d = mremap(a + P, 0, 2 * P, MREMAP_MAYMOVE);
	printf("shared anon dup: %s, moved %d\n", err(d), d != a + P);
	printf("dup reads %c %c\n", d[0], d[P]);
	d[0] = 'X';
	a[2 * P] = 'Y';
	printf("writes seen both ways: %c %c\n", a[P], d[P]);
	maps_line("source", a);
	printf("source still reads %c %c %c %c\n", a[0], a[P], a[2 * P], a[3 * P]);
	/* Longer than the rest of the source: the copy's tail maps the
	 * object's pages past the source (zero pages of the shared object,
	 * or SIGBUS past a file's end). */
	char *long_dup = mremap(a + 3 * P, 0, 2 * P, MREMAP_MAYMOVE);
	printf("dup past the source's end: %s, reads %c\n", err(long_dup), long_dup[0]);
	/* Without MREMAP_MAYMOVE there is nowhere to put it. */
	printf("no MAYMOVE: %s\n", err(mremap(a, 0, P, 0)));
	/* A private mapping cannot be duplicated. */
	char *pr = mmap(0, 2 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("private: %s\n", err(mremap(pr, 0, P, MREMAP_MAYMOVE)));
	/* A zero new size is refused whatever the old one. */
	printf("zero new size: %s\n", err(mremap(a, 0, 0, MREMAP_MAYMOVE)));
	/* Nothing mapped there: EFAULT. */
	munmap(pr, 2 * P);
	printf("unmapped source: %s\n", err(mremap(pr, 0, P, MREMAP_MAYMOVE)));
	/* MREMAP_FIXED places the copy over whatever was there. */
	char *target = mmap(0, 3 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	target[0] = 'T';
	char *f = mremap(a, 0, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, target + P);
	printf("fixed: %s at the target %d, reads %c %c, the target's first page %c\n", err(f), f == target + P, f[0], f[P],
	       target[0]);
	/* A memfd mapped shared: the copy keeps the file offset. */
	int fd = memfd_create("dup", 0);
	ftruncate(fd, 4 * P);
	pwrite(fd, "0123", 4, 2 * P);
	char *m = mmap(0, 4 * P, RW, MAP_SHARED, fd, 0);
	char *md = mremap(m + 2 * P, 0, P, MREMAP_MAYMOVE);
	printf("memfd dup: %s, reads %c\n", err(md), md[0]);
	maps_line("memfd dup", md);
	/* A SysV segment, attached once: the copy is a second attach. */
	int id = shmget(IPC_PRIVATE, 2 * P, IPC_CREAT | 0600);
	char *s = shmat(id, 0, 0);
	s[P] = 'S';
	char *sd = mremap(s, 0, 2 * P, MREMAP_MAYMOVE);
	struct shmid_ds ds;
	shmctl(id, IPC_STAT, &ds);
	printf("SysV dup: %s, reads %c, attaches %lu\n", err(sd), sd[P], (unsigned long)ds.shm_nattch);
	shmdt(sd);
	shmdt(s);
	shmctl(id, IPC_STAT, &ds);
	printf("SysV after both detaches: attaches %lu\n", (unsigned long)ds.shm_nattch);
	shmctl(id, IPC_RMID, 0);
	/* A new size past the user half: EINVAL. */
	printf("new size past the user half: %s\n", err(mremap(d, 0, 1UL << 48, MREMAP_MAYMOVE)));
	/* MREMAP_FIXED onto the source itself: EFAULT (Linux also unmaps
	 * the source first, so it is not looked at again). */
	char *x = mmap(0, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	printf("fixed onto the source: %s\n", err(mremap(x, 0, P, MREMAP_MAYMOVE | MREMAP_FIXED, x)));
	/* The copy outlives the source; a fork shares it. */
	munmap(a, 4 * P);
	pid_t pid = fork();
	if (pid == 0) {
		d[0] = 'C';
		_exit(0);
	}
	waitpid(pid, 0, 0);
	printf("after the source is gone and a child wrote: %c %c\n", d[0], d[P]);
	return 0;
}
