/* SysV shared memory as a program sees it: shmget's errors, two attaches
 * sharing bytes, IPC_STAT's counts, IPC_RMID while attached, shmat's
 * placement flags, shmdt of a split attach, /proc/self/maps' name, the
 * sysctls and /proc/sysvipc/shm. Prints only what is the same on every
 * Linux (no ids, no addresses). With an argument "huge", also a
 * SHM_HUGETLB segment (its result, and how HugePages_Free moved). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#define KEY 0x5653ed01
#define PG 4096

static const char *err(long r) { return r < 0 ? strerror(errno) : "ok"; }

static int nattch(int id) {
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) < 0)
		return -errno;
	return (int)ds.shm_nattch;
}

/* The maps line of the mapping at p: its name, and whether its inode
 * number is the segment's id. */
static void maps_name(void *p, int id) {
	char line[512], want[32];
	FILE *f = fopen("/proc/self/maps", "r");
	snprintf(want, sizeof want, "%lx-", (unsigned long)p);
	while (f && fgets(line, sizeof line, f)) {
		if (strncmp(line, want, strlen(want)) == 0) {
			char *name = strrchr(line, ' ');
			char *slash = strchr(line, '/');
			unsigned long ino = 0;
			sscanf(line, "%*s %*s %*s %*s %lu", &ino);
			printf("maps: inode is the id %d, %s", ino == (unsigned long)id, slash ? slash : name);
		}
	}
	if (f)
		fclose(f);
}

static long meminfo(const char *field) {
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, field, strlen(field)) == 0 && line[strlen(field)] == ':')
			v = atol(line + strlen(field) + 1);
	if (f)
		fclose(f);
	return v;
}

static void huge(void) {
	long before = meminfo("HugePages_Free");
	int id = shmget(IPC_PRIVATE, 3 << 20, IPC_CREAT | SHM_HUGETLB | 0600);
	printf("hugetlb shmget: %s\n", err(id));
	if (id < 0)
		return;
	printf("hugetlb reserved %ld\n", meminfo("HugePages_Rsvd"));
	char *p = shmat(id, NULL, 0);
	printf("hugetlb shmat: %s, 2 MiB aligned %d\n", err(p == (void *)-1 ? -1 : 0), ((unsigned long)p & ((2 << 20) - 1)) == 0);
	shmctl(id, IPC_RMID, NULL);
	memset(p, 0x5a, 4 << 20);
	printf("hugetlb used %ld, reserved %ld\n", before - meminfo("HugePages_Free"), meminfo("HugePages_Rsvd"));
	maps_name(p, id);
	printf("hugetlb shmdt: %s\n", err(shmdt(p)));
	printf("hugetlb freed %d\n", meminfo("HugePages_Free") == before);
	printf("SHM_HUGE_1GB: %s\n", err(shmget(IPC_PRIVATE, 1 << 30, IPC_CREAT | SHM_HUGETLB | (30 << 26) | 0600)));
	printf("SHM_HUGE 32 MiB: %s\n", err(shmget(IPC_PRIVATE, 1 << 25, IPC_CREAT | SHM_HUGETLB | (25 << 26) | 0600)));
}

int main(int argc, char **argv) {
	struct shmid_ds ds;
	struct shminfo info;
	struct shm_info si;

	/* A leftover from an earlier run on the host goes first. */
	int old = shmget(KEY, 0, 0);
	if (old >= 0)
		shmctl(old, IPC_RMID, NULL);

	printf("no key: %s\n", err(shmget(KEY, PG, 0600)));
	printf("size 0: %s\n", err(shmget(IPC_PRIVATE, 0, IPC_CREAT | 0600)));
	int max_ids = shmctl(0, IPC_INFO, (struct shmid_ds *)&info);
	printf("IPC_INFO: %s, shmmin %lu, shmmni %lu, shmseg %lu\n", err(max_ids), info.shmmin, info.shmmni, info.shmseg);
	printf("too big: %s\n", err(shmget(IPC_PRIVATE, info.shmmax + 1, IPC_CREAT | 0600)));

	int id = shmget(KEY, 3 * PG + 100, IPC_CREAT | IPC_EXCL | 0640);
	printf("create: %s\n", err(id));
	printf("again, IPC_EXCL: %s\n", err(shmget(KEY, PG, IPC_CREAT | IPC_EXCL | 0600)));
	printf("again, bigger: %s\n", err(shmget(KEY, 4 * PG, 0)));
	printf("again, same id: %d\n", shmget(KEY, 0, 0) == id);
	shmctl(id, IPC_STAT, &ds);
	printf("stat: key ok %d, mode %o, size %zu, nattch %lu, cpid ok %d, lpid %d, atime %ld\n",
	       ds.shm_perm.__key == KEY, ds.shm_perm.mode, ds.shm_segsz, ds.shm_nattch,
	       ds.shm_cpid == getpid(), ds.shm_lpid, (long)ds.shm_atime);

	char *a = shmat(id, NULL, 0);
	char *b = shmat(id, NULL, SHM_RDONLY);
	printf("two attaches: %d, nattch %d\n", a != (void *)-1 && b != (void *)-1 && a != b, nattch(id));
	strcpy(a + 2 * PG, "shared bytes");
	printf("read through the other: %s\n", b + 2 * PG);
	printf("tail of the last page reads zero: %d\n", a[3 * PG + 4000] == 0);
	maps_name(a, id);
	printf("mprotect write on SHM_RDONLY: %s\n", err(mprotect(b, PG, PROT_READ | PROT_WRITE)));
	shmctl(id, IPC_STAT, &ds);
	printf("lpid is ours %d, atime set %d\n", ds.shm_lpid == getpid(), ds.shm_atime != 0);

	/* Split the first attach into three VMAs: each counts. */
	mprotect(a + PG, PG, PROT_READ);
	printf("split: nattch %d\n", nattch(id));
	printf("shmdt mid-page: %s\n", err(shmdt(a + 1)));
	printf("shmdt of no attach: %s\n", err(shmdt((char *)&ds)));
	const char *r = err(shmdt(a));
	printf("shmdt split: %s, nattch %d\n", r, nattch(id));
	printf("shmdt again: %s\n", err(shmdt(a)));

	/* Placement. */
	char *hole = mmap(NULL, 8 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("over a mapping: %s\n", err(shmat(id, hole, 0) == (void *)-1 ? -1 : 0));
	char *c = shmat(id, hole, SHM_REMAP);
	printf("SHM_REMAP: %s, there %d\n", err(c == (void *)-1 ? -1 : 0), c == hole);
	printf("sees the bytes: %s\n", c + 2 * PG);
	printf("unaligned: %s\n", err(shmat(id, hole + 8 * PG + 5, 0) == (void *)-1 ? -1 : 0));
	munmap(hole + 4 * PG, 4 * PG);
	char *d = shmat(id, hole + 4 * PG + 5, SHM_RND);
	printf("SHM_RND: %s, rounded %d\n", err(d == (void *)-1 ? -1 : 0), d == hole + 4 * PG);
	printf("SHM_REMAP without an address: %s\n", err(shmat(id, NULL, SHM_REMAP) == (void *)-1 ? -1 : 0));
	printf("bad id: %s\n", err(shmat(-1, NULL, 0) == (void *)-1 ? -1 : 0));
	printf("nattch %d\n", nattch(id));

	/* IPC_SET, then IPC_RMID while attached. */
	ds.shm_perm.mode = 0604;
	printf("IPC_SET: %s\n", err(shmctl(id, IPC_SET, &ds)));
	printf("SHM_LOCK: %s\n", err(shmctl(id, SHM_LOCK, NULL)));
	shmctl(id, IPC_STAT, &ds);
	printf("mode %o\n", ds.shm_perm.mode);
	shmctl(id, SHM_UNLOCK, NULL);
	printf("IPC_RMID: %s\n", err(shmctl(id, IPC_RMID, NULL)));
	shmctl(id, IPC_STAT, &ds);
	printf("removed: key %d, mode %o, nattch %lu\n", ds.shm_perm.__key, ds.shm_perm.mode, ds.shm_nattch);
	printf("the key is free: %s\n", err(shmget(KEY, PG, 0600)));
	char *e = shmat(id, NULL, 0);
	r = err(e == (void *)-1 ? -1 : 0);
	printf("attach after IPC_RMID: %s, nattch %d\n", r, nattch(id));
	maps_name(e, id);
	shmdt(b);
	shmdt(c);
	shmdt(d);
	printf("one left: nattch %d\n", nattch(id));
	munmap(e, 4 * PG);
	printf("munmap of the last: %s\n", strerror(-nattch(id)));

	/* SHM_INFO and /proc. */
	int p1 = shmget(IPC_PRIVATE, 10 * PG, IPC_CREAT | 0600);
	int top = shmctl(0, SHM_INFO, (struct shmid_ds *)&si);
	printf("SHM_INFO: %s, counts ours %d\n", err(top), si.used_ids >= 1 && si.shm_tot >= 10);
	char *q = shmat(p1, NULL, 0);
	q[0] = 1;
	q[5 * PG] = 1;
	char line[512];
	int found = 0;
	FILE *f = fopen("/proc/sysvipc/shm", "r");
	while (f && fgets(line, sizeof line, f)) {
		int key, shmid, cpid, lpid;
		unsigned perms, nat;
		unsigned long size, rss;
		if (sscanf(line, "%d %d %o %lu %d %d %u %*u %*u %*u %*u %*d %*d %*d %lu", &key, &shmid, &perms, &size,
			   &cpid, &lpid, &nat, &rss) == 8 && shmid == p1)
			found = printf("sysvipc: key %d perms %o size %lu nattch %u rss %lu\n", key, perms, size, nat, rss);
	}
	if (f)
		fclose(f);
	printf("listed %d\n", found > 0);
	shmdt(q);
	shmctl(p1, IPC_RMID, NULL);
	f = fopen("/proc/sys/kernel/shmmni", "r");
	printf("shmmni: %s", f && fgets(line, sizeof line, f) ? line : "none\n");
	if (f)
		fclose(f);

	if (argc > 1 && strcmp(argv[1], "huge") == 0)
		huge();
	else
		printf("hugetlb shmget: %s\n", err(shmget(IPC_PRIVATE, 3 << 20, IPC_CREAT | SHM_HUGETLB | 0600)));
	return 0;
}
