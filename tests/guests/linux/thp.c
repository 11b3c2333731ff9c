/* Transparent huge pages as a program sees them: the sysfs settings, a
 * 2 MiB page placed by a write fault in an MADV_HUGEPAGE range (smaps
 * AnonHugePages, THPeligible, VmFlags hg, meminfo, pagemap), a partial
 * munmap splitting it, MADV_NOHUGEPAGE, MADV_COLLAPSE of small pages,
 * and a fork whose child writes one page of a shared huge page.
 * Reads sysfs only; with the argument "write" it also writes `enabled`
 * (run that only where the settings are the program's own). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define M2 (2UL << 20)
#define K4 4096UL

static char buf[1 << 16];

static const char *slurp(const char *path)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	buf[n < 0 ? 0 : n] = 0;
	return buf;
}

/* The smaps field `name` of the VMA holding `addr` (-1 if not found). */
static long smaps_field(void *addr, const char *name)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0;
	long v = -1;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)addr >= s && (uintptr_t)addr < e;
			continue;
		}
		if (in && !strncmp(line, name, strlen(name))) {
			v = strtol(line + strlen(name), NULL, 10);
			break;
		}
	}
	if (f)
		fclose(f);
	return v;
}

static int has_vmflag(void *addr, const char *flag)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0, found = 0;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)addr >= s && (uintptr_t)addr < e;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			char pat[8];
			snprintf(pat, sizeof(pat), " %s", flag);
			found = strstr(line, pat) != NULL;
			break;
		}
	}
	if (f)
		fclose(f);
	return found;
}

static int present(void *addr)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;
	if (fd >= 0)
		pread(fd, &e, 8, (uintptr_t)addr / K4 * 8);
	close(fd);
	return (int)(e >> 63);
}

/* A 2 MiB-aligned private anonymous range of `slots` slots. */
static char *aligned(int slots)
{
	char *p = mmap(NULL, (slots + 1) * M2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	char *a = (char *)(((uintptr_t)p + M2 - 1) & ~(M2 - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + slots * M2, p + (slots + 1) * M2 - (a + slots * M2));
	return a;
}

int main(int argc, char **argv)
{
	const char *T = "/sys/kernel/mm/transparent_hugepage/";
	char path[256];
	snprintf(path, sizeof(path), "%senabled", T);
	printf("enabled: %s", slurp(path));
	snprintf(path, sizeof(path), "%shpage_pmd_size", T);
	printf("hpage_pmd_size: %s", slurp(path));
	snprintf(path, sizeof(path), "%shugepages-2048kB/enabled", T);
	printf("2048kB: %s", slurp(path));

	char *a = aligned(2);
	printf("THPeligible before advice: %ld\n", smaps_field(a, "THPeligible:"));
	madvise(a, 2 * M2, MADV_HUGEPAGE);
	printf("hg %d, THPeligible %ld\n", has_vmflag(a, "hg"), smaps_field(a, "THPeligible:"));
	a[5] = 1;
	printf("thp %d\n", smaps_field(a, "AnonHugePages:") == 2048);
	printf("rss %ld kB, page 511 present %d, page 512 present %d\n", smaps_field(a, "Rss:"),
	       present(a + 511 * K4), present(a + M2));
	const char *mi = strstr(slurp("/proc/meminfo"), "AnonHugePages:");
	printf("meminfo counts it %d\n", mi && strtol(mi + 14, NULL, 10) >= 2048);

	/* A child writes one page of the shared huge page. */
	memset(a + 100 * K4, 7, 10);
	pid_t pid = fork();
	if (pid == 0) {
		a[100 * K4] = 9;
		_exit(a[100 * K4 + 1] == 7 ? 0 : 1);
	}
	int st;
	waitpid(pid, &st, 0);
	printf("child ok %d, parent sees %d, parent thp %d\n", WIFEXITED(st) && !WEXITSTATUS(st), a[100 * K4],
	       smaps_field(a, "AnonHugePages:") == 2048);

	/* A partial munmap splits it; the rest stays. */
	munmap(a + 7 * K4, K4);
	printf("after a partial munmap: AnonHugePages %ld, Rss %ld kB, byte %d\n", smaps_field(a, "AnonHugePages:"),
	       smaps_field(a, "Rss:"), a[5]);

	/* Small pages under MADV_NOHUGEPAGE, then collapsed. */
	char *b = aligned(1);
	madvise(b, M2, MADV_NOHUGEPAGE);
	b[0] = 3;
	b[300 * K4] = 4;
	printf("nh %d, THPeligible %ld, AnonHugePages %ld, Rss %ld kB\n", has_vmflag(b, "nh"),
	       smaps_field(b, "THPeligible:"), smaps_field(b, "AnonHugePages:"), smaps_field(b, "Rss:"));
	int r = madvise(b, M2, MADV_COLLAPSE);
	printf("collapse under nohugepage: %s\n", r ? strerror(errno) : "ok");
	madvise(b, M2, MADV_HUGEPAGE);
	r = madvise(b, M2, MADV_COLLAPSE);
	printf("collapse: %s, AnonHugePages %ld, bytes %d %d %d\n", r ? strerror(errno) : "ok",
	       smaps_field(b, "AnonHugePages:"), b[0], b[300 * K4], b[1]);
	r = madvise(b + K4, K4, MADV_COLLAPSE);
	printf("collapse of less than a huge page: %s\n", r ? strerror(errno) : "ok");

	if (argc > 1 && !strcmp(argv[1], "write")) {
		snprintf(path, sizeof(path), "%senabled", T);
		int fd = open(path, O_WRONLY);
		ssize_t n = write(fd, "never\n", 6);
		close(fd);
		printf("wrote never: %zd, enabled: %s", n, slurp(path));
		char *c = aligned(1);
		madvise(c, M2, MADV_HUGEPAGE);
		c[0] = 1;
		printf("under never: AnonHugePages %ld\n", smaps_field(c, "AnonHugePages:"));
		fd = open(path, O_WRONLY);
		n = write(fd, "sometimes", 9);
		printf("a bad word: %s\n", n < 0 ? strerror(errno) : "taken");
		close(fd);
	}
	return 0;
}
