/* PR_SET_MDWE's refusal in mprotect is made mapping by mapping, as
 * Linux's do_mprotect_pkey loop makes it: over two mappings whose second
 * may not gain PROT_EXEC, the first changes and the call fails with
 * EACCES. Prints what it sees; run by tests/guests/linux_mdwe_order.rs. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif

#define P 4096UL

static void perms(const char *what, char *p)
{
	char line[256];
	FILE *f = fopen("/proc/self/maps", "r");
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		char pr[8];
		if (sscanf(line, "%lx-%lx %7s", &a, &b, pr) == 3 && a <= (unsigned long)p && (unsigned long)p < b)
			printf("%s: %s\n", what, pr);
	}
	fclose(f);
}

int main(void)
{
	char *a = mmap(0, 2 * P, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect(a + P, P, PROT_READ);
	if (prctl(PR_SET_MDWE, 1, 0, 0, 0)) {
		printf("PR_SET_MDWE: %s\n", strerror(errno));
		return 0;
	}
	int r = mprotect(a, 2 * P, PROT_EXEC);
	printf("mprotect over both: %s\n", r ? strerror(errno) : "ok");
	perms("first", a);
	perms("second", a + P);
	r = mprotect(a + P, P, PROT_READ | PROT_WRITE | PROT_EXEC);
	printf("write and exec: %s\n", r ? strerror(errno) : "ok");
	perms("second", a + P);
	return 0;
}
