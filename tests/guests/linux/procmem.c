/* /proc/self/mem, O_TMPFILE and O_DIRECT as a program sees them: prints
 * one line per check, the same under the VMM as on Linux. With the
 * argument "tmpfile" it checks O_TMPFILE and O_DIRECT (in /dev/shm, a
 * tmpfs on Linux), else /proc/self/mem. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static sigjmp_buf env;

static void on_segv(int sig)
{
	siglongjmp(env, sig);
}

/* Does a store of `v` to `p` fault? */
static int store_faults(volatile char *p, char v)
{
	int sig;

	signal(SIGSEGV, on_segv);
	sig = sigsetjmp(env, 1);
	if (!sig)
		*p = v;
	signal(SIGSEGV, SIG_DFL);
	return sig == SIGSEGV;
}

static const char *err(long r)
{
	return r < 0 ? strerror(errno) : "ok";
}

/* Prints `what`, the call's result and its errno's text (or "ok"). */
#define SHOW(what, call)                                                    \
	do {                                                                \
		long r_;                                                    \
		errno = 0;                                                  \
		r_ = (long)(call);                                          \
		printf("%s: %ld %s\n", what, r_, r_ < 0 ? strerror(errno) : "ok"); \
	} while (0)

int main(int argc, char **argv)
{
	int tmpfile_part = argc > 1 && strcmp(argv[1], "tmpfile") == 0;
	long page = sysconf(_SC_PAGESIZE);
	char path[64], buf[16], one = 1, two = 2;
	int fd, fd2, ro;
	char *p, *none, *shared, *hole;
	struct stat st;

	if (tmpfile_part)
		goto tmpfile;
	fd = open("/proc/self/mem", O_RDWR);
	printf("open rdwr: %s\n", err(fd));
	snprintf(path, sizeof(path), "/proc/%d/mem", getpid());
	fd2 = open(path, O_RDONLY);
	printf("open by pid: %s\n", err(fd2));
	printf("stat mode %o\n", fstat(fd, &st) == 0 ? st.st_mode : 0);

	/* A read-only private page: the write copies, the page stays read-only. */
	p = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("zero before: %d\n", p[0]);
	printf("lseek: %d\n", lseek(fd, (off_t)(uintptr_t)p, SEEK_SET) == (off_t)(uintptr_t)p);
	printf("write: %ld\n", (long)write(fd, &one, 1));
	printf("offset moved: %d\n", lseek(fd, 0, SEEK_CUR) == (off_t)(uintptr_t)p + 1);
	printf("seen: %d\n", p[0]);
	printf("store faults: %d, kept %d\n", store_faults(p, 5), p[0]);
	SHOW("pread by pid", pread(fd2, buf, 1, (off_t)(uintptr_t)p));
	printf("byte %d\n", buf[0]);
	printf("mprotect rw: %d\n", mprotect(p, page, PROT_READ | PROT_WRITE));
	printf("store now faults: %d\n", store_faults(p + 1, 7));
	printf("byte %d\n", p[1]);
	printf("first kept: %d\n", p[0]);

	/* PROT_NONE private memory: read and written through the file. */
	none = mmap(NULL, 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("pwrite none: %ld\n", (long)pwrite(fd, &two, 1, (off_t)(uintptr_t)none + 3));
	buf[0] = buf[1] = 9;
	SHOW("pread none", pread(fd, buf, 2, (off_t)(uintptr_t)none + 2));
	printf("bytes %d %d\n", buf[0], buf[1]);
	mprotect(none, page, PROT_READ);
	printf("readable: %d\n", none[3]);

	/* A shared read-only page: read, never written. */
	shared = mmap(NULL, page, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	SHOW("pwrite shared", pwrite(fd, &one, 1, (off_t)(uintptr_t)shared));
	SHOW("pread shared", pread(fd, buf, 1, (off_t)(uintptr_t)shared));
	printf("byte %d\n", buf[0]);

	/* Holes: EIO, or a short transfer up to them. */
	hole = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(hole + page, page);
	SHOW("pread hole", pread(fd, buf, 4, (off_t)(uintptr_t)(hole + page)));
	SHOW("pwrite hole", pwrite(fd, buf, 4, (off_t)(uintptr_t)(hole + page)));
	printf("short read: %ld\n", (long)pread(fd, buf, 8, (off_t)(uintptr_t)(hole + page - 3)));
	printf("short write: %ld\n", (long)pwrite(fd, "abcdefgh", 8, (off_t)(uintptr_t)(hole + page - 5)));
	printf("wrote: %.5s\n", hole + page - 5);
	SHOW("pread negative", pread(fd, buf, 1, -4096));
	SHOW("write on rdonly", pwrite(fd2, buf, 1, (off_t)(uintptr_t)hole));
	SHOW("lseek end", lseek(fd, 0, SEEK_END));
	SHOW("direct mem", open("/proc/self/mem", O_RDONLY | O_DIRECT));
	return 0;

	/* O_TMPFILE and O_DIRECT (tmpfs takes O_DIRECT at any alignment). */
tmpfile:
	ro = open("/dev/shm", O_TMPFILE | O_RDWR | O_DIRECT, 0600);
	printf("tmpfile: %s\n", err(ro));
	SHOW("tmpfile write", write(ro, "hello", 5));
	memset(buf, 0, sizeof(buf));
	SHOW("tmpfile pread", pread(ro, buf, 5, 0));
	printf("read %s\n", buf);
	fstat(ro, &st);
	printf("tmpfile nlink %ld size %ld\n", (long)st.st_nlink, (long)st.st_size);
	printf("tmpfile flags direct: %d\n", (fcntl(ro, F_GETFL) & O_DIRECT) != 0);
	SHOW("tmpfile in /tmp", open("/tmp", O_TMPFILE | O_RDWR | O_DIRECT, 0600));
	SHOW("tmpfile rdonly", open("/tmp", O_TMPFILE | O_RDONLY, 0600));
	SHOW("tmpfile creat", open("/tmp", O_TMPFILE | O_RDWR | O_CREAT, 0600));
	SHOW("tmpfile not dir", open("/dev/null", O_TMPFILE | O_RDWR, 0600));
	SHOW("tmpfile missing", open("/tmp/no/such", O_TMPFILE | O_RDWR, 0600));
	SHOW("direct /dev/null", open("/dev/null", O_RDONLY | O_DIRECT));
	return 0;
}
