/* mincore of shared-memory objects asks the object as well as the page
 * tables, as Linux asks the page cache: a memfd's, a /dev/shm file's and a
 * SysV segment's pages written through the descriptor or by another
 * process count as resident in a mapping that never touched them, in
 * shared and private mappings alike; a hole does not; anonymous private
 * memory and hugetlb memory count what is mapped only. Prints what it
 * sees; run by tests/guests/linux_mincore_cache.rs. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define P 4096UL
#define N 4

static void show(const char *what, void *p)
{
	unsigned char v[N];
	if (mincore(p, N * P, v)) {
		perror(what);
		return;
	}
	printf("%s:", what);
	for (int i = 0; i < N; i++)
		printf(" %d", v[i] & 1);
	printf("\n");
}

static void in_child_touch(char *p, int page)
{
	pid_t pid = fork();
	if (pid == 0) {
		p[page * P] = 1;
		_exit(0);
	}
	waitpid(pid, 0, 0);
}

static void file(const char *what, int fd)
{
	ftruncate(fd, N * P);
	pwrite(fd, "x", 1, 0);
	pwrite(fd, "y", 1, 2 * P);
	char *sh = mmap(0, N * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char *pr = mmap(0, N * P, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	char name[64];
	snprintf(name, sizeof(name), "%s shared, untouched", what);
	show(name, sh);
	snprintf(name, sizeof(name), "%s private, untouched", what);
	show(name, pr);
	in_child_touch(sh, 3);
	snprintf(name, sizeof(name), "%s after a child wrote page 3", what);
	show(name, pr);
	fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, P);
	snprintf(name, sizeof(name), "%s after a punch of page 0", what);
	show(name, sh);
	pr[P] = 1; /* a private write over a hole: the object gets the page */
	snprintf(name, sizeof(name), "%s after a private write to page 1", what);
	show(name, sh);
	munmap(sh, N * P);
	munmap(pr, N * P);
	close(fd);
}

int main(void)
{
	setvbuf(stdout, 0, _IONBF, 0);
	file("memfd", memfd_create("mc", 0));
	file("/dev/shm file", open("/dev/shm/mincore-cache", O_RDWR | O_CREAT | O_TRUNC, 0600));
	unlink("/dev/shm/mincore-cache");
	char *a = mmap(0, N * P, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	in_child_touch(a, 1);
	show("shared anonymous after a child wrote page 1", a);
	int id = shmget(IPC_PRIVATE, N * P, IPC_CREAT | 0600);
	char *s = shmat(id, 0, 0);
	in_child_touch(s, 2);
	show("SysV segment after a child wrote page 2", s);
	shmdt(s);
	shmctl(id, IPC_RMID, 0);
	char *pa = mmap(0, N * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pa[P] = 1;
	in_child_touch(pa, 2);
	show("private anonymous, page 1 written, a child wrote page 2", pa);
	return 0;
}
