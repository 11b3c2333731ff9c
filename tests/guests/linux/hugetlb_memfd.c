/* A hugetlbfs memfd (memfd_create(MFD_HUGETLB)) under Linux 6.12's rules:
 * write EINVAL, sizes in whole huge pages, a writable mapping grows the
 * file, shared mappings reserve, private ones copy on write, fallocate
 * and hole punches (and MADV_REMOVE) move HugePages_Free/Rsvd, a punch
 * takes the page out of every mapping. Prints what it sees; run by
 * tests/guests/linux_hugetlb_memfd.rs with 8 huge pages. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define H (2UL << 20)
#define RW (PROT_READ | PROT_WRITE)

static long meminfo(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && sscanf(line + strlen(key), " %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void counts(const char *what)
{
	long total = meminfo("HugePages_Total:"), free = meminfo("HugePages_Free:");
	printf("%s: used %ld, reserved %ld\n", what, total - free, meminfo("HugePages_Rsvd:"));
}

static const char *res(int r)
{
	return r ? strerror(errno) : "ok";
}

static void show_stat(int fd)
{
	struct stat st;
	if (fstat(fd, &st)) {
		printf("fstat: %s\n", strerror(errno));
		return;
	}
	printf("size %ld blksize %ld blocks %ld\n", (long)st.st_size, (long)st.st_blksize, (long)st.st_blocks);
}

int main(void)
{
	int fd = memfd_create("hm", MFD_HUGETLB);
	if (fd < 0) {
		printf("memfd_create: %s\n", strerror(errno));
		return 0;
	}
	printf("write: %s\n", res(write(fd, "x", 1) < 0));
	printf("ftruncate 1 MiB: %s\n", res(ftruncate(fd, 1 << 20)));
	printf("ftruncate 4 MiB: %s\n", res(ftruncate(fd, 2 * H)));
	show_stat(fd);
	volatile char *s = mmap(NULL, 3 * H, RW, MAP_SHARED, fd, 0);
	if (s == MAP_FAILED) {
		printf("mmap: %s\n", strerror(errno));
		return 0;
	}
	counts("shared mapped");
	show_stat(fd);
	s[0] = 1;
	s[H + 5] = 2;
	counts("shared touched");
	show_stat(fd);
	char b = 0;
	long n = pread(fd, &b, 1, H + 5);
	printf("pread %ld: %d\n", n, b);
	volatile char *p = mmap(NULL, 3 * H, RW, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		printf("mmap private: %s\n", strerror(errno));
		return 0;
	}
	counts("private mapped");
	printf("private reads %d", p[0]);
	printf(" %d\n", p[H + 5]);
	counts("private read");
	p[0] = 9;
	counts("private written");
	printf("shared %d", s[0]);
	printf(" private %d\n", p[0]);
	s[H + 5] = 3;
	printf("private sees %d\n", p[H + 5]);
	printf("fallocate: %s\n", res(fallocate(fd, 0, 0, 3 * H)));
	counts("fallocated");
	printf("punch: %s\n", res(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, H)));
	counts("punched 0");
	printf("after the punch shared %d", s[0]);
	printf(" private %d\n", p[0]);
	counts("refaulted 0");
	printf("MADV_REMOVE: %s\n", res(madvise((void *)(s + H), H, MADV_REMOVE)));
	counts("removed 1");
	printf("private page 1 now %d\n", p[H + 5]);
	counts("private hole read");
	printf("MADV_DONTNEED: %s\n", res(madvise((void *)p, 3 * H, MADV_DONTNEED)));
	counts("private dropped");
	printf("mmap at 4 KiB: %s\n", res(mmap(NULL, H, RW, MAP_SHARED, fd, 4096) == MAP_FAILED));
	void *x = mmap(NULL, 1, PROT_READ, MAP_SHARED, fd, 0);
	printf("mmap of 1 byte: %s", res(x == MAP_FAILED));
	printf(", munmap of 2 MiB: %s\n", res(munmap(x, H)));
	munmap((void *)s, 3 * H);
	munmap((void *)p, 3 * H);
	counts("unmapped");
	show_stat(fd);
	printf("ftruncate 0: %s\n", res(ftruncate(fd, 0)));
	counts("truncated");
	close(fd);
	counts("closed");
	return 0;
}
