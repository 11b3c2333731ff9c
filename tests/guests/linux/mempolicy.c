/* NUMA memory policy calls as a program sees them on a machine with one
 * memory node: mbind's argument checks and their order, VMAs split by a
 * policy (/proc/self/maps), MPOL_MF_MOVE keeping contents and access,
 * MPOL_MF_STRICT, get_mempolicy's reports and set_mempolicy. Prints one
 * line per check; the test compares it with Linux's output. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MPOL_DEFAULT 0
#define MPOL_PREFERRED 1
#define MPOL_BIND 2
#define MPOL_INTERLEAVE 3
#define MPOL_LOCAL 4
#define MPOL_F_STATIC_NODES (1 << 15)
#define MPOL_F_RELATIVE_NODES (1 << 14)
#define MPOL_MF_STRICT 1
#define MPOL_MF_MOVE 2
#define MPOL_MF_MOVE_ALL 4
#define MPOL_F_NODE 1
#define MPOL_F_ADDR 2
#define MPOL_F_MEMS_ALLOWED 4

static long mbind_(void *a, unsigned long len, long mode, unsigned long *mask, unsigned long maxnode, unsigned long flags)
{
	return syscall(SYS_mbind, a, len, mode, mask, maxnode, flags);
}

static void show(const char *what, long r)
{
	if (r < 0)
		printf("%s: %ld %s\n", what, r, strerror(errno));
	else
		printf("%s: %ld\n", what, r);
}

static int maps_lines(char *lo, char *hi)
{
	char line[256];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s < (unsigned long)hi && e > (unsigned long)lo)
			n++;
	}
	fclose(f);
	return n;
}

static sigjmp_buf jb;
static void on_segv(int s)
{
	(void)s;
	siglongjmp(jb, 1);
}

int main(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	unsigned long node0 = 1, node1 = 2, big[20];
	char *m = mmap(NULL, 8 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int mode = -1;
	unsigned long mask[3];

	memset(big, 0, sizeof big);
	/* Argument checks. */
	show("bad mode", mbind_(m, ps, 7, &node0, 2, 0));
	show("static+relative", mbind_(m, ps, MPOL_BIND | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES, &node0, 2, 0));
	show("bad flags", mbind_(m, ps, MPOL_BIND, &node0, 2, 8));
	show("misaligned", mbind_(m + 1, ps, MPOL_BIND, &node0, 2, 0));
	show("default with nodes", mbind_(m, ps, MPOL_DEFAULT, &node0, 2, 0));
	show("local with nodes", mbind_(m, ps, MPOL_LOCAL, &node0, 2, 0));
	show("bind no nodes", mbind_(m, ps, MPOL_BIND, NULL, 0, 0));
	show("bind node 1", mbind_(m, ps, MPOL_BIND, &node1, 3, 0));
	show("mask fault", mbind_(m, ps, MPOL_BIND, (unsigned long *)8, 65, 0));
	show("maxnode huge", mbind_(m, ps, MPOL_BIND, &node0, 4096 * 8 + 2, 0));
	big[18] = 1;
	show("bit past max", mbind_(m, ps, MPOL_BIND, big, 20 * 64, 0));
	big[18] = 0;
	big[0] = 1;
	show("long clean mask", mbind_(m, ps, MPOL_BIND, big, 20 * 64, 0));
	show("zero length", mbind_(m, 0, MPOL_BIND, &node0, 2, 0));
	/* Holes. */
	munmap(m + 6 * ps, ps);
	show("hole bind", mbind_(m + 5 * ps, 2 * ps, MPOL_BIND, &node0, 2, 0));
	show("hole default", mbind_(m + 5 * ps, 3 * ps, MPOL_DEFAULT, NULL, 0, 0));
	show("all hole default", mbind_(m + 6 * ps, ps, MPOL_DEFAULT, NULL, 0, 0));
	/* Splits and merges. */
	show("bind middle", mbind_(m + 2 * ps, 2 * ps, MPOL_BIND, &node0, 2, 0));
	printf("vmas: %d\n", maps_lines(m, m + 6 * ps));
	show("bind wider", mbind_(m + ps, 4 * ps, MPOL_BIND, &node0, 2, 0));
	printf("vmas: %d\n", maps_lines(m, m + 6 * ps));
	show("default all", mbind_(m, 6 * ps, MPOL_DEFAULT, NULL, 0, 0));
	printf("vmas: %d\n", maps_lines(m, m + 6 * ps));
	/* Reports. */
	mbind_(m, ps, MPOL_INTERLEAVE | MPOL_F_STATIC_NODES, big, 20 * 64, 0);
	memset(mask, 0xff, sizeof mask);
	show("get addr", syscall(SYS_get_mempolicy, &mode, mask, 130, m, MPOL_F_ADDR));
	printf("mode %#x mask %lx %lx %lx\n", mode, mask[0], mask[1], mask[2]);
	show("get addr default", syscall(SYS_get_mempolicy, &mode, mask, 64, m + ps, MPOL_F_ADDR));
	printf("mode %#x mask %lx\n", mode, mask[0]);
	show("get addr hole", syscall(SYS_get_mempolicy, &mode, NULL, 0, m + 6 * ps, MPOL_F_ADDR));
	show("get addr no flag", syscall(SYS_get_mempolicy, &mode, NULL, 0, m, 0));
	show("get node addr", syscall(SYS_get_mempolicy, &mode, NULL, 0, m + 3 * ps, MPOL_F_NODE | MPOL_F_ADDR));
	printf("node %d\n", mode);
	show("get node", syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, MPOL_F_NODE));
	show("get maxnode 0", syscall(SYS_get_mempolicy, &mode, mask, 0, NULL, 0));
	show("get allowed", syscall(SYS_get_mempolicy, &mode, mask, 64, NULL, MPOL_F_MEMS_ALLOWED));
	printf("mode %d mask %lx\n", mode, mask[0]);
	show("get allowed+addr", syscall(SYS_get_mempolicy, &mode, mask, 64, m, MPOL_F_MEMS_ALLOWED | MPOL_F_ADDR));
	show("get bad flag", syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 8));
	/* The process's policy. */
	show("get task", syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 0));
	printf("mode %d\n", mode);
	show("set interleave", syscall(SYS_set_mempolicy, MPOL_INTERLEAVE, &node0, 2));
	show("get task", syscall(SYS_get_mempolicy, &mode, mask, 64, NULL, 0));
	printf("mode %d mask %lx\n", mode, mask[0]);
	show("get node", syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, MPOL_F_NODE));
	printf("node %d\n", mode);
	show("set preferred empty", syscall(SYS_set_mempolicy, MPOL_PREFERRED, NULL, 0));
	show("get task", syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 0));
	printf("mode %d\n", mode);
	show("set bad", syscall(SYS_set_mempolicy, MPOL_BIND, &node1, 3));
	show("set default", syscall(SYS_set_mempolicy, MPOL_DEFAULT, NULL, 0));
	/* Moving pages: contents and access stay. */
	memset(m + 2 * ps, 0x5a, ps);
	mprotect(m + 2 * ps, ps, PROT_READ);
	show("strict local", mbind_(m + 2 * ps, ps, MPOL_LOCAL, NULL, 0, MPOL_MF_STRICT));
	show("strict bind", mbind_(m + 2 * ps, ps, MPOL_BIND, &node0, 2, MPOL_MF_STRICT));
	show("move local", mbind_(m + 2 * ps, ps, MPOL_LOCAL, NULL, 0, MPOL_MF_MOVE | MPOL_MF_STRICT));
	show("move all", mbind_(m + 2 * ps, ps, MPOL_LOCAL, NULL, 0, MPOL_MF_MOVE_ALL));
	printf("byte %#x\n", (unsigned char)m[2 * ps + 7]);
	signal(SIGSEGV, on_segv);
	if (sigsetjmp(jb, 1) == 0) {
		m[2 * ps] = 1;
		printf("store: ok\n");
	} else {
		printf("store: SIGSEGV\n");
	}
	printf("byte %#x\n", (unsigned char)m[2 * ps]);
	return 0;
}
