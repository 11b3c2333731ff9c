/* MAP_HUGETLB as Linux does it: reservations at mmap, a page per first
 * touch, MADV_DONTNEED and munmap give pages back, Linux's EINVALs, and
 * /proc/meminfo and sysfs that agree. Prints only differences of the
 * counters, so a run prints the same lines wherever 8 or more 2 MiB
 * pages are free (and "mmap: Cannot allocate memory" where none are). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define H (2UL << 20)

static long meminfo(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':')
			v = strtol(line + strlen(key) + 1, NULL, 10);
	fclose(f);
	return v;
}

static long sysfs(const char *name)
{
	char path[128];
	long v = -1;
	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-2048kB/%s", name);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static long free0, rsvd0;

static void counters(const char *when)
{
	long fr = meminfo("HugePages_Free"), rs = meminfo("HugePages_Rsvd");
	printf("%s: used %ld, reserved %ld, sysfs agrees %d\n", when, free0 - fr, rs - rsvd0,
	       sysfs("free_hugepages") == fr && sysfs("resv_hugepages") == rs &&
		       sysfs("nr_hugepages") == meminfo("HugePages_Total"));
}

static const char *err(long r)
{
	return r == 0 ? "ok" : strerror(errno);
}

int main(void)
{
	const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB;
	printf("Hugepagesize %ld kB\n", meminfo("Hugepagesize"));
	free0 = meminfo("HugePages_Free");
	rsvd0 = meminfo("HugePages_Rsvd");
	/* The length is rounded up to whole huge pages. */
	char *p = mmap(NULL, 3 * H - 4096, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED) {
		printf("mmap: %s\n", strerror(errno));
		return 0;
	}
	printf("aligned %d\n", (unsigned long)p % H == 0);
	counters("mapped");
	memset(p, 0x5a, 4096);
	p[2 * H + 12345] = 7;
	counters("touched 0 and 2");
	printf("page 1 reads zero %d\n", p[H + 99] == 0);
	counters("read 1");
	printf("data kept %d\n", p[0] == 0x5a && p[4095] == 0x5a && p[2 * H + 12345] == 7);
	printf("madvise off a huge page: %s\n", err(madvise(p + 4096, H, MADV_DONTNEED)));
	printf("MADV_FREE: %s\n", err(madvise(p, H, MADV_FREE)));
	printf("madvise 1 page + 4 KiB: %s\n", err(madvise(p, H + 4096, MADV_DONTNEED)));
	counters("dropped 0");
	printf("page 0 zero again %d\n", p[0] == 0 && p[H + 99] == 0);
	counters("refaulted 0");
	printf("munmap of 4 KiB: %s\n", err(munmap(p + 4096, 4096)));
	printf("munmap of page 1: %s\n", err(munmap(p + H, H)));
	counters("unmapped 1");
	printf("page 2 kept %d\n", p[2 * H + 12345] == 7);
	printf("munmap: %s\n", err(munmap(p, 3 * H)));
	counters("unmapped");
	void *q = mmap(p + 4096, H, PROT_READ | PROT_WRITE, flags | MAP_FIXED, -1, 0);
	printf("fixed off a huge page: %s\n", q == MAP_FAILED ? strerror(errno) : "mapped");
	q = mmap(NULL, H, PROT_READ | PROT_WRITE, flags | (30 << MAP_HUGE_SHIFT), -1, 0);
	printf("MAP_HUGE_1GB: %s\n", q == MAP_FAILED ? strerror(errno) : "mapped");
	q = mmap(NULL, H, PROT_READ | PROT_WRITE, flags | (25 << MAP_HUGE_SHIFT), -1, 0);
	printf("MAP_HUGE 32 MiB: %s\n", q == MAP_FAILED ? strerror(errno) : "mapped");
	/* Shared: the pages belong to the mapping, not to its entries. */
	char *s = mmap(NULL, 2 * H, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (s == MAP_FAILED) {
		printf("shared mmap: %s\n", strerror(errno));
		return 1;
	}
	s[100] = 42;
	counters("shared touched");
	printf("shared madvise: %s\n", err(madvise(s, 2 * H, MADV_DONTNEED)));
	counters("shared dropped");
	printf("shared data kept %d\n", s[100] == 42);
	printf("munmap: %s\n", err(munmap(s, 2 * H)));
	counters("end");
	return 0;
}
