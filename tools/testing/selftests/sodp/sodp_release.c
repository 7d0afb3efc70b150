// SPDX-License-Identifier: GPL-2.0
/*
 * Tearing down what sodp serves while the mm holds a fault, and when an
 * allocation fails on the way to a registration:
 *
 *  - dereg_fault_blocked: ibv_dereg_mr() of an ODP MR while a remote WRITE
 *    into it is blocked in ext4's page_mkwrite on a frozen file system.
 *    rxe gives up waiting for MR references after 50 s and frees the MR
 *    anyway, so the file system stays frozen for longer than that on rxe.
 *  - qp_destroy_fault_blocked: the same, but the responder's QP is
 *    destroyed instead of the MR; rxe waits 50 s for QP references too.
 *  - prefetch_unload (siw): an asynchronous PREFETCH_WRITE blocked the
 *    same way, the device closed and siw unloaded before the thaw; siw is
 *    loaded again and siw0 recreated afterwards.
 *  - reg_mr_failslab: every slab allocation of an ODP ibv_reg_mr() failed
 *    in turn (fail-nth); needs a kernel with CONFIG_FAILSLAB.
 *  - slow_store_other_qps: a peer READ from an ODP MR over a file whose
 *    block device is suspended (device-mapper) blocks its fault until the
 *    resume; READs on other QPs of the device meanwhile complete.
 *
 * Each checks that the sodp umems come back to where they were and no page
 * reference is left; a splat in the guest fails the run (vm-run).
 *
 * Environment: SODP_DEVICE (required), SODP_EXT4_DIR (an ext4 mount the
 * test may freeze), SODP_FREEZE_SECS (how long the file system stays
 * frozen; default 60 on rxe, 10 on siw), SODP_TOP or SODP_MODULES (where
 * siw.ko is), SODP_SIW_PARAMS. Run as root.
 */
#include "sodp_test.h"
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/fs.h>
#include <linux/magic.h>

#define PAGE_SZ		4096UL
#define FILE_PAGES	16
#define WRID_RDMA	0x52444d41ull
#define ODP_RW		(SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND)
#define CASE_TIMEOUT	300	/* seconds per case, TCG guest */
#define BLOCK_WAIT_MS	60000	/* for the fault to reach page_mkwrite */
#define FAILSLAB	"/sys/kernel/debug/failslab"
#define FAIL_PAGE	"/sys/kernel/debug/fail_page_alloc"
#define FAULT_KNOBS	12
#define SLOW_DM		"sodp_slow"	/* dm-linear over a loop device */
#define SLOW_IMG	"/tmp/sodp_slow.img"
#define SLOW_MNT	"/tmp/sodp_slow"
#define SLOW_SECTORS	131072		/* 64 MiB */
#define OTHER_PAIRS	4
#define OTHER_LEN	PAGE_SZ
#define FAIL_NTH_MAX	2000

struct rel_ctx {
	const char *name;	/* SODP_DEVICE */
	struct sodp_dev dev;
	bool dev_open;
	struct sodp_pair pair;
	bool connected;
	int fd;			/* the ext4 file */
	int dirfd;		/* its mount, for FIFREEZE/FITHAW */
	void *map;
	void *src;
	struct ibv_mr *mr;
	struct ibv_mr *smr;
	pid_t thawer;
	bool siw_unloaded;	/* prefetch_unload: reload in teardown */
	char siw_netdev[IF_NAMESIZE];
	/* reg_mr_failslab: the fault attributes set, and their old values */
	char knob[FAULT_KNOBS][64];
	char knob_saved[FAULT_KNOBS][24];
	int nknobs;
	char loopdev[32];	/* slow_store_other_qps: under SLOW_DM */
	bool slow_mounted;
	pid_t resumer;		/* resumes SLOW_DM when resume_fd closes */
	int resume_fd;
	struct sodp_pair others[OTHER_PAIRS];
	int nothers;
};

/*
 * The failslab attributes reg_mr_failslab sets: every slab allocation may
 * fail, silently, whatever its cache (cache-filter) and whoever the caller
 * (another run, guest-failinject.sh, may have left a stack filter on
 * sodp.ko: then siw's own allocations would never fail). The reject range
 * is set apart (fill_pool_range()). The stack filter files exist with
 * CONFIG_FAULT_INJECTION_STACKTRACE_FILTER.
 */
static const struct {
	const char *file;
	const char *val;
} failslab_set[] = {
	{ "ignore-gfp-wait", "N" },
	{ "cache-filter", "N" },
	{ "verbose", "0" },
	{ "require-start", "0" },
	{ "require-end", "18446744073709551615" },
	{ "stacktrace-depth", "32" },
};

/*
 * fail-nth counts every fault point the task passes, fail_page_alloc's
 * too: the high-order attempt of SLUB for a new slab (no reclaim, a
 * fallback when it fails) and stack depot's pools come and go with the
 * state of the caches. A minimum order above MAX_PAGE_ORDER (10) keeps
 * every page allocation out of the count.
 */
#define FAIL_PAGE_NO_ORDER	"11"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t dbg_get(struct __test_metadata *_metadata, const char *name)
{
	int64_t val = -1;

	ASSERT_EQ(0, sodp_debugfs_get(name, &val));
	return val;
}

static int write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -EIO;
}

static int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* How long the file system stays frozen. */
static int freeze_secs(bool iwarp)
{
	const char *env = getenv("SODP_FREEZE_SECS");

	if (env && atoi(env) > 0)
		return atoi(env);
	/* rxe_cleanup() waits 50 s for MR references, then frees the MR. */
	return iwarp ? 10 : 60;
}

/*
 * Freeze the file system of c->dirfd and start a process that thaws it
 * after @secs, whatever happens to the test process meanwhile.
 */
static void freeze_for(struct __test_metadata *_metadata, struct rel_ctx *c,
		       int secs)
{
	ASSERT_EQ(0, ioctl(c->dirfd, FIFREEZE, 0))
		TH_LOG("FIFREEZE: %s", strerror(errno));
	c->thawer = fork();
	ASSERT_LE(0, c->thawer);
	if (!c->thawer) {
		/* Not killed with the test: the thaw must happen. */
		setsid();
		sleep(secs);
		if (ioctl(c->dirfd, FITHAW, 0) && errno != EINVAL)
			_exit(1);
		_exit(0);
	}
	TH_LOG("%s frozen for %d s", getenv("SODP_EXT4_DIR"), secs);
}

/* Wait for the thawer; thaw now if it failed. */
static void thaw_wait(struct __test_metadata *_metadata, struct rel_ctx *c)
{
	int status;

	if (c->thawer <= 0)
		return;
	ASSERT_EQ(c->thawer, waitpid(c->thawer, &status, 0));
	c->thawer = 0;
	if (ioctl(c->dirfd, FITHAW, 0) == 0)
		TH_LOG("the thawer did not thaw");
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
}

/*
 * Wait until some task sleeps in @func (its kernel stack names it): the
 * fault reached the file system. False after BLOCK_WAIT_MS.
 */
static bool blocked_in(const char *func)
{
	uint64_t deadline = now_ms() + BLOCK_WAIT_MS;
	char path[300], line[256];
	struct dirent *de;
	bool found = false;
	DIR *d;
	FILE *f;

	while (!found && now_ms() < deadline) {
		d = opendir("/proc");
		if (!d)
			return false;
		while (!found && (de = readdir(d))) {
			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/stack",
				 de->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			while (fgets(line, sizeof(line), f))
				if (strstr(line, func))
					found = true;
			fclose(f);
		}
		closedir(d);
		if (!found)
			usleep(100 * 1000);
	}
	return found;
}

/* Wait until debugfs @name equals @want; its last value otherwise. */
static int64_t dbg_wait(struct __test_metadata *_metadata, const char *name,
			int64_t want, int timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	int64_t v;

	while ((v = dbg_get(_metadata, name)) != want && now_ms() < deadline)
		usleep(50 * 1000);
	return v;
}

/*
 * Write FILE_PAGES of the @seed pattern to c->fd, fsync() it, drop it from
 * the page cache and map it MAP_SHARED with @prot at c->map. Returns why
 * not, or NULL.
 */
static const char *file_fill_map(struct rel_ctx *c, const char *seed,
				 int prot)
{
	const size_t len = FILE_PAGES * PAGE_SZ;
	uint8_t *image;
	ssize_t n;

	image = malloc(len);
	if (!image)
		return "out of memory";
	sodp_pattern_fill(image, len, sodp_seed(seed), 0);
	n = pwrite(c->fd, image, len, 0);
	free(image);
	if (n != (ssize_t)len)
		return "pwrite failed";
	if (fsync(c->fd) || posix_fadvise(c->fd, 0, len, POSIX_FADV_DONTNEED))
		return "fsync/fadvise failed";
	c->map = mmap(NULL, len, prot, MAP_SHARED, c->fd, 0);
	if (c->map == MAP_FAILED) {
		c->map = NULL;
		return "mmap failed";
	}
	return NULL;
}

/*
 * An unlinked ext4 file of FILE_PAGES written, fsync()ed and dropped from
 * the page cache, mapped MAP_SHARED at c->map. Returns why not, or NULL.
 */
static const char *file_setup(struct rel_ctx *c)
{
	const char *dir = getenv("SODP_EXT4_DIR");
	char path[4096];
	struct statfs sfs;

	if (!dir || !*dir)
		return "SODP_EXT4_DIR is not set";
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (c->dirfd < 0)
		return "SODP_EXT4_DIR cannot be opened";
	snprintf(path, sizeof(path), "%s/sodp_release.XXXXXX", dir);
	c->fd = mkstemp(path);
	if (c->fd < 0)
		return "mkstemp in SODP_EXT4_DIR failed";
	unlink(path);
	if (fstatfs(c->fd, &sfs) || sfs.f_type != EXT4_SUPER_MAGIC)
		return "SODP_EXT4_DIR is not ext4";

	return file_fill_map(c, "release", PROT_READ | PROT_WRITE);
}

static const char *odp_missing(const struct ibv_odp_caps *odp,
			       uint32_t rc_bits)
{
	if (!(odp->general_caps & IBV_ODP_SUPPORT))
		return "no ODP";
	if ((odp->per_transport_caps.rc_odp_caps & rc_bits) != rc_bits)
		return "no RC ODP for the operation";
	return NULL;
}

/* "netdev NAME" of "rdma link show DEV/1". */
static int link_netdev(const char *dev, char *out, size_t len)
{
	char cmd[128], line[512], name[64], *p;
	int ret = -ENOENT;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "rdma link show %s/1", dev);
	f = popen(cmd, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		p = strstr(line, " netdev ");
		if (p && sscanf(p, " netdev %63s", name) == 1 &&
		    strlen(name) < len) {
			snprintf(out, len, "%s", name);
			ret = 0;
		}
	}
	pclose(f);
	return ret;
}

/* Load siw.ko again and recreate the device on its netdev. */
static void siw_reload(struct __test_metadata *_metadata, struct rel_ctx *c)
{
	const char *mods = getenv("SODP_MODULES");
	const char *params = getenv("SODP_SIW_PARAMS");
	const char *top = getenv("SODP_TOP");
	char path[4096], state[64] = "";
	uint64_t deadline;

	c->siw_unloaded = false;
	if (mods && *mods)
		snprintf(path, sizeof(path), "%s/siw.ko", mods);
	else
		snprintf(path, sizeof(path), "%s/build/modules/siw.ko",
			 top ? top : ".");
	if (access("/sys/module/siw", F_OK))
		ASSERT_EQ(0, sodp_run("insmod %s %s", path, params ? params : ""));
	snprintf(path, sizeof(path), "/sys/class/infiniband/%s", c->name);
	if (access(path, F_OK))
		ASSERT_EQ(0, sodp_run("rdma link add %s type siw netdev %s",
				      c->name, c->siw_netdev));
	snprintf(path, sizeof(path), "/sys/class/infiniband/%s/ports/1/state",
		 c->name);
	deadline = now_ms() + SODP_TIMEOUT_MS_DEFAULT;
	while (now_ms() < deadline) {
		if (!read_str(path, state, sizeof(state)) &&
		    strstr(state, "ACTIVE"))
			return;
		usleep(100 * 1000);
	}
	ASSERT_TRUE(false) TH_LOG("%s not ACTIVE again: %s", c->name, state);
}

/*
 * An ext4 file of FILE_PAGES written, fsync()ed and dropped from the page
 * cache, on a file system of its own over SLOW_DM, a device-mapper linear
 * device that the test suspends: reads of the file then wait until the
 * resume. Mapped read-only MAP_SHARED at c->map. Returns why not, or NULL.
 */
static const char *slow_setup(struct rel_ctx *c)
{
	FILE *f;

	sodp_run("modprobe dm-mod 2>/dev/null");
	if (access("/dev/mapper/control", F_OK) || sodp_run("which dmsetup >/dev/null"))
		return "no device-mapper (dm-mod, dmsetup)";
	sodp_run("dmsetup remove " SLOW_DM " 2>/dev/null");
	if (sodp_run("truncate -s %u " SLOW_IMG, SLOW_SECTORS * 512))
		return "cannot create " SLOW_IMG;
	f = popen("losetup -f --show " SLOW_IMG, "r");
	if (!f)
		return "losetup failed";
	if (!fgets(c->loopdev, sizeof(c->loopdev), f))
		c->loopdev[0] = 0;
	pclose(f);
	c->loopdev[strcspn(c->loopdev, "\n")] = 0;
	if (!c->loopdev[0])
		return "no loop device";
	if (sodp_run("dmsetup create --noudevsync " SLOW_DM
		" --table '0 %u linear %s 0'", SLOW_SECTORS, c->loopdev))
		return "dmsetup create failed";
	/* Without udev in the guest the node is made here. */
	sodp_run("dmsetup mknodes " SLOW_DM);
	if (sodp_run("mkfs.ext4 -q -F /dev/mapper/" SLOW_DM) ||
	    sodp_run("mkdir -p " SLOW_MNT) ||
	    sodp_run("mount /dev/mapper/" SLOW_DM " " SLOW_MNT))
		return "cannot make or mount ext4 on " SLOW_DM;
	c->slow_mounted = true;

	c->fd = open(SLOW_MNT "/file", O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (c->fd < 0)
		return "cannot create the file";
	return file_fill_map(c, "slow", PROT_READ);
}

/*
 * Suspend SLOW_DM, and start a process that resumes it when c->resume_fd
 * is closed: by slow_resume(), or by the test process dying.
 */
static void slow_suspend(struct __test_metadata *_metadata, struct rel_ctx *c)
{
	int fds[2];
	char b;

	ASSERT_EQ(0, pipe(fds));
	c->resumer = fork();
	ASSERT_LE(0, c->resumer);
	if (!c->resumer) {
		/* Not killed with the test: the resume must happen. */
		setsid();
		close(fds[1]);
		while (read(fds[0], &b, 1) > 0)
			;
		_exit(sodp_run("dmsetup resume " SLOW_DM) ? 1 : 0);
	}
	close(fds[0]);
	c->resume_fd = fds[1];
	ASSERT_EQ(0, sodp_run("dmsetup suspend --nolockfs " SLOW_DM));
}

/* Resume SLOW_DM: the resumer's wait status, 0 if none ran. */
static int slow_resume_now(struct rel_ctx *c)
{
	int status = 0;

	if (c->resumer <= 0)
		return 0;
	close(c->resume_fd);
	if (waitpid(c->resumer, &status, 0) != c->resumer)
		status = -1;
	c->resumer = 0;
	return status;
}

/* Resume SLOW_DM; the resumer must have succeeded. */
static void slow_resume(struct __test_metadata *_metadata, struct rel_ctx *c)
{
	int status = slow_resume_now(c);

	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
}

/* After the file is unmapped and closed: take SLOW_DM apart. */
static void slow_teardown(struct rel_ctx *c)
{
	if (c->slow_mounted)
		sodp_run("umount " SLOW_MNT);
	if (c->loopdev[0]) {
		sodp_run("dmsetup remove " SLOW_DM " 2>/dev/null");
		sodp_run("losetup -d %s", c->loopdev);
		unlink(SLOW_IMG);
	}
}

static void ctx_init(struct __test_metadata *_metadata, struct rel_ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->dirfd = -1;
	c->name = getenv("SODP_DEVICE");
	if (!c->name)
		SKIP(return, "SODP_DEVICE is not set");
	if (geteuid())
		SKIP(return, "needs root");
}

static void ctx_teardown(struct __test_metadata *_metadata, struct rel_ctx *c)
{
	const size_t len = FILE_PAGES * PAGE_SZ;
	int i;

	if (c->thawer > 0) {
		waitpid(c->thawer, NULL, 0);
		c->thawer = 0;
	}
	if (c->dirfd >= 0)
		ioctl(c->dirfd, FITHAW, 0);
	/* Before the QPs go: a fault may wait for the resume. */
	slow_resume_now(c);
	if (c->connected)
		sodp_pair_destroy(&c->pair);
	for (i = 0; i < c->nothers; i++)
		sodp_pair_destroy(&c->others[i]);
	sodp_mr_dereg(&c->mr);
	sodp_mr_dereg(&c->smr);
	if (c->dev_open)
		sodp_dev_close(&c->dev);
	if (c->siw_unloaded)
		siw_reload(_metadata, c);
	while (c->nknobs > 0) {
		c->nknobs--;
		write_str(c->knob[c->nknobs], c->knob_saved[c->nknobs]);
	}
	if (c->map)
		munmap(c->map, len);
	free(c->src);
	if (c->fd >= 0)
		close(c->fd);
	if (c->dirfd >= 0)
		close(c->dirfd);
	slow_teardown(c);
}

/* Cases that keep the device open in the test process. */
FIXTURE(release) {
	struct rel_ctx c;
};

FIXTURE_SETUP(release)
{
	ctx_init(_metadata, &self->c);
	ASSERT_EQ(0, sodp_dev_open(&self->c.dev, self->c.name));
	self->c.dev_open = true;
}

FIXTURE_TEARDOWN(release)
{
	ctx_teardown(_metadata, &self->c);
}

/*
 * A remote WRITE into a cold page of a MAP_SHARED ext4 file under an ODP
 * MR while the file system is frozen: the responder's fault sleeps in
 * ext4_page_mkwrite() until the thaw. ibv_dereg_mr() meanwhile returns
 * 0, the thaw lets the fault finish, and then the umem is gone (debugfs
 * umems back to where it was) with no page held and no splat. Before the
 * fix rxe freed the MR and its umem after its 50 s wait (a WARN in
 * __rxe_cleanup, then the fault returned into freed memory).
 */
TEST_F_TIMEOUT(release, dereg_fault_blocked, CASE_TIMEOUT)
{
	const size_t wlen = 64, woff = 5 * PAGE_SZ + 8;
	struct rel_ctx *c = &self->c;
	int64_t umems0, held;
	const char *why;
	struct ibv_wc wc;
	uint64_t t0;
	int ret;

	why = odp_missing(&c->dev.odp, IBV_ODP_SUPPORT_WRITE);
	if (why)
		SKIP(return, "%s: %s", c->name, why);
	why = file_setup(c);
	if (why)
		SKIP(return, "%s", why);

	umems0 = dbg_get(_metadata, "umems");
	c->src = malloc(wlen);
	ASSERT_NE(NULL, c->src);
	sodp_pattern_fill(c->src, wlen, sodp_seed("release-src"), 0);
	c->smr = sodp_mr_reg(&c->dev, c->src, wlen, IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, c->smr);
	c->mr = sodp_mr_reg(&c->dev, c->map, FILE_PAGES * PAGE_SZ, ODP_RW);
	ASSERT_NE(NULL, c->mr) TH_LOG("ODP reg: %s", strerror(errno));
	ASSERT_EQ(umems0 + 1, dbg_get(_metadata, "umems"));
	ASSERT_EQ(0, sodp_pair_connect(&c->dev, &c->pair));
	c->connected = true;

	freeze_for(_metadata, c, freeze_secs(c->dev.iwarp));
	ASSERT_EQ(0, sodp_post_rdma(&c->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_RDMA, c->src, wlen, c->smr->lkey,
				    (uintptr_t)c->map + woff, c->mr->rkey, 0));
	ASSERT_TRUE(blocked_in("ext4_page_mkwrite"))
		TH_LOG("the fault never reached ext4_page_mkwrite");

	t0 = now_ms();
	ret = ibv_dereg_mr(c->mr);
	c->mr = NULL;
	ASSERT_EQ(0, ret) TH_LOG("ibv_dereg_mr: %s", strerror(ret));
	TH_LOG("ibv_dereg_mr returned after %llu ms",
	       (unsigned long long)(now_ms() - t0));

	thaw_wait(_metadata, c);
	/* The fault finishes, then whoever holds the MR lets it go. */
	ASSERT_EQ(umems0, dbg_wait(_metadata, "umems", umems0,
				   c->dev.timeout_ms));

	/*
	 * The WRITE was placed before the MR went (SUCCESS), found it gone
	 * (remote access error) or outlasted the retries meanwhile.
	 */
	ASSERT_EQ(0, sodp_poll_one(c->pair.cli.scq, &wc, c->dev.timeout_ms));
	ASSERT_EQ(WRID_RDMA, wc.wr_id);
	TH_LOG("WRITE completed with %s", ibv_wc_status_str(wc.status));
	ASSERT_TRUE(wc.status == IBV_WC_SUCCESS ||
		    wc.status == IBV_WC_REM_ACCESS_ERR ||
		    wc.status == IBV_WC_RETRY_EXC_ERR);

	sodp_pair_destroy(&c->pair);
	c->connected = false;
	held = dbg_wait(_metadata, "pages_held", 0, c->dev.timeout_ms);
	ASSERT_EQ(0, held);
}

/*
 * Lines of the kernel log that name a splat, or rxe's "cleanup failed"
 * (its message when rxe_cleanup() gave up waiting for references); -1 if
 * the log cannot be read.
 */
static int kmsg_splats(void)
{
	static const char * const pat[] = {
		"WARNING:", "BUG:", "Oops", "cleanup failed",
	};
	char line[1024];
	int n = 0;
	size_t i;
	FILE *f;

	f = popen("dmesg 2>/dev/null", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		for (i = 0; i < ARRAY_SIZE(pat); i++)
			if (strstr(line, pat[i])) {
				n++;
				break;
			}
	if (pclose(f))
		return -1;
	return n;
}

/*
 * As dereg_fault_blocked, but the responder's QP is destroyed (and the MR
 * stays): ibv_destroy_qp() of the server QP while the peer's WRITE into
 * its ODP MR sleeps in ext4_page_mkwrite() on the frozen file system, for
 * longer than rxe's 50 s wait for QP references. The destroy returns 0,
 * the kernel logs no splat and no "cleanup failed", the WRITE was placed
 * whole or not at all (and whole if it completed), the rest of the file is
 * untouched, the MR can be deregistered afterwards and the umems and page
 * references come back to where they were. Before the fix rxe WARNed in
 * __rxe_cleanup() after 50 s and freed the QP while the blocked responder
 * still ran on it.
 */
TEST_F_TIMEOUT(release, qp_destroy_fault_blocked, CASE_TIMEOUT)
{
	const size_t wlen = 64, woff = 5 * PAGE_SZ + 8;
	const size_t len = FILE_PAGES * PAGE_SZ;
	const uint64_t fseed = sodp_seed("release");
	const uint64_t sseed = sodp_seed("release-src");
	struct rel_ctx *c = &self->c;
	int64_t umems0, held;
	int splats0, splats;
	const uint8_t *map;
	struct ibv_qp *qp;
	const char *why;
	struct ibv_wc wc;
	bool placed;
	uint64_t t0;
	ssize_t bad;
	int ret;

	why = odp_missing(&c->dev.odp, IBV_ODP_SUPPORT_WRITE);
	if (why)
		SKIP(return, "%s: %s", c->name, why);
	why = file_setup(c);
	if (why)
		SKIP(return, "%s", why);
	splats0 = kmsg_splats();
	ASSERT_LE(0, splats0) TH_LOG("cannot read the kernel log");

	umems0 = dbg_get(_metadata, "umems");
	c->src = malloc(wlen);
	ASSERT_NE(NULL, c->src);
	sodp_pattern_fill(c->src, wlen, sseed, 0);
	c->smr = sodp_mr_reg(&c->dev, c->src, wlen, IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, c->smr);
	c->mr = sodp_mr_reg(&c->dev, c->map, len, ODP_RW);
	ASSERT_NE(NULL, c->mr) TH_LOG("ODP reg: %s", strerror(errno));
	ASSERT_EQ(umems0 + 1, dbg_get(_metadata, "umems"));
	ASSERT_EQ(0, sodp_pair_connect(&c->dev, &c->pair));
	c->connected = true;

	freeze_for(_metadata, c, freeze_secs(c->dev.iwarp));
	ASSERT_EQ(0, sodp_post_rdma(&c->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_RDMA, c->src, wlen, c->smr->lkey,
				    (uintptr_t)c->map + woff, c->mr->rkey, 0));
	ASSERT_TRUE(blocked_in("ext4_page_mkwrite"))
		TH_LOG("the fault never reached ext4_page_mkwrite");

	/* The responder's QP, in RTS, from under librdmacm. */
	qp = c->pair.srv.id->qp;
	c->pair.srv.id->qp = NULL;
	c->pair.srv.qp = NULL;
	t0 = now_ms();
	ret = ibv_destroy_qp(qp);
	TH_LOG("ibv_destroy_qp returned %d after %llu ms", ret,
	       (unsigned long long)(now_ms() - t0));
	ASSERT_EQ(0, ret) TH_LOG("ibv_destroy_qp: %s", strerror(ret));

	thaw_wait(_metadata, c);
	/*
	 * The client's WRITE was acknowledged before the QP went, or it
	 * outlasted the retries (or met a flushed responder) afterwards.
	 */
	ASSERT_EQ(0, sodp_poll_one(c->pair.cli.scq, &wc, c->dev.timeout_ms));
	ASSERT_EQ(WRID_RDMA, wc.wr_id);
	TH_LOG("WRITE completed with %s", ibv_wc_status_str(wc.status));
	ASSERT_TRUE(wc.status == IBV_WC_SUCCESS ||
		    wc.status == IBV_WC_RETRY_EXC_ERR ||
		    wc.status == IBV_WC_REM_ACCESS_ERR ||
		    wc.status == IBV_WC_REM_OP_ERR);

	/* The file: the WRITE's bytes whole or not at all, the rest as it was. */
	map = c->map;
	bad = sodp_pattern_check(map, woff, fseed, 0);
	ASSERT_EQ(-1, bad) TH_LOG("file byte %zd changed", bad);
	bad = sodp_pattern_check(map + woff + wlen, len - woff - wlen, fseed,
				 woff + wlen);
	ASSERT_EQ(-1, bad) TH_LOG("file byte %zd changed",
				  bad < 0 ? bad : (ssize_t)(woff + wlen) + bad);
	placed = sodp_pattern_check(map + woff, wlen, sseed, 0) == -1;
	ASSERT_TRUE(placed ||
		    sodp_pattern_check(map + woff, wlen, fseed, woff) == -1)
		TH_LOG("the WRITE was placed in part");
	if (wc.status == IBV_WC_SUCCESS)
		ASSERT_TRUE(placed) TH_LOG("acknowledged WRITE not in the file");
	TH_LOG("the WRITE was %splaced", placed ? "" : "not ");

	ASSERT_EQ(0, ibv_dereg_mr(c->mr));
	c->mr = NULL;
	ASSERT_EQ(umems0, dbg_wait(_metadata, "umems", umems0,
				   c->dev.timeout_ms));
	sodp_pair_destroy(&c->pair);
	c->connected = false;
	held = dbg_wait(_metadata, "pages_held", 0, c->dev.timeout_ms);
	ASSERT_EQ(0, held);

	splats = kmsg_splats();
	ASSERT_EQ(splats0, splats) TH_LOG("%d new splat lines in the kernel log",
					  splats - splats0);
}

/*
 * Set the fault attribute @dir/@file to @val; the teardown puts the old
 * value back. Returns 0 or -errno.
 */
static int knob_set(struct rel_ctx *c, const char *dir, const char *file,
		    const char *val)
{
	char *path;
	int ret;

	if (c->nknobs == FAULT_KNOBS)
		return -ENOSPC;
	path = c->knob[c->nknobs];
	snprintf(path, sizeof(c->knob[0]), "%s/%s", dir, file);
	ret = read_str(path, c->knob_saved[c->nknobs],
		       sizeof(c->knob_saved[0]));
	if (ret)
		return ret;
	ret = write_str(path, val);
	if (ret)
		return ret;
	c->nknobs++;
	return 0;
}

/*
 * The text of debugobjects' fill_pool() from /proc/kallsyms: its address
 * and the next symbol's. 0 if found, -ENOENT if the kernel has none
 * (CONFIG_DEBUG_OBJECTS=n), -EPERM if the symbols cannot be read or their
 * addresses are hidden.
 */
static int fill_pool_range(unsigned long *start, unsigned long *end)
{
	unsigned long addr, lo = 0, hi = ULONG_MAX;
	char line[512], sym[256], type;
	bool seen = false;
	FILE *f;

	f = fopen("/proc/kallsyms", "r");
	if (!f)
		return -EPERM;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx %c %255s", &addr, &type, sym) != 3)
			continue;
		seen |= addr != 0;
		if (!strcmp(sym, "fill_pool") && !strchr(line, '['))
			lo = addr;
	}
	rewind(f);
	while (lo && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx %c %255s", &addr, &type, sym) == 3 &&
		    addr > lo && addr < hi)
			hi = addr;
	}
	fclose(f);
	if (!seen)
		return -EPERM;
	if (!lo)
		return -ENOENT;
	*start = lo;
	*end = hi;
	return 0;
}

/*
 * One ODP registration of @buf with fail-nth (@nfd) set to @nth: the
 * allocations it counted (those left of @nth read back), or -1 with
 * errno. The registration, NULL if it failed, is in @mr.
 */
static int reg_nth(struct rel_ctx *c, int nfd, int nth, void *buf,
		   size_t len, struct ibv_mr **mr)
{
	char val[32];
	ssize_t rd;
	int err;

	snprintf(val, sizeof(val), "%d", nth);
	if (pwrite(nfd, val, strlen(val), 0) != (ssize_t)strlen(val))
		return -1;
	*mr = ibv_reg_mr(c->dev.pd, buf, len, ODP_RW);
	err = errno;
	rd = pread(nfd, val, sizeof(val) - 1, 0);
	if (pwrite(nfd, "0", 1, 0) != 1 || rd <= 0)
		return -1;
	val[rd] = 0;
	errno = err;
	return nth - atoi(val);
}

/*
 * Every slab allocation of an ODP ibv_reg_mr() fails in turn (fail-nth
 * with failslab): each failed registration leaves debugfs umems where it
 * was (no umem, notifier or mm reference leaked), each successful one
 * adds exactly one. Before the fix siw kept the umem when the memory
 * object could not be allocated.
 *
 * The sequence must be the same in every iteration and every run, or an
 * allocation is skipped when one before it comes and goes: fail-nth only
 * counts what the registering task allocates, slab and page allocations
 * and the debug kernel's own among them. What would come and go is kept
 * out of the count: every page allocation (FAIL_PAGE_NO_ORDER), the
 * batches debugobjects' fill_pool() allocates from whatever task finds
 * its pool low (the reject range), and what the first registration of a
 * process allocates once (the mm's notifier subscriptions: a warm-up
 * registration takes them). Only xarray nodes late in the sequence, after
 * the driver's own allocations, still vary: siw's STag index is random and
 * the restrack ids grow, so a path one node deeper now and then adds an
 * allocation (and its kmemleak object) to the end, where a failure is
 * absorbed by the GFP_KERNEL retry; the length without injection is logged.
 */
TEST_F_TIMEOUT(release, reg_mr_failslab, CASE_TIMEOUT)
{
	const size_t len = 4 * PAGE_SZ;
	struct rel_ctx *c = &self->c;
	unsigned long rej_start = 0, rej_end = 0;
	int64_t umems0, umems;
	int i, n, nfd, cnt, cnt0, failed = 0;
	char path[64], val[24];
	struct ibv_mr *mr;
	const char *why;
	void *buf;
	int ret;

	why = odp_missing(&c->dev.odp, 0);
	if (why)
		SKIP(return, "%s: %s", c->name, why);
	snprintf(path, sizeof(path), "/proc/self/task/%d/fail-nth", gettid());
	if (access(FAILSLAB, F_OK) || access(path, W_OK))
		SKIP(return, "needs failslab and fail-nth (CONFIG_FAILSLAB)");
	ret = fill_pool_range(&rej_start, &rej_end);
	if (ret == -EPERM)
		SKIP(return, "kernel symbols unreadable: fill_pool() unknown");
	ASSERT_TRUE(!ret || ret == -ENOENT)
		TH_LOG("/proc/kallsyms: %s", strerror(-ret));
	if (!ret && access(FAILSLAB "/reject-start", F_OK))
		SKIP(return, "debugobjects without a failslab stack filter");
	for (i = 0; i < (int)ARRAY_SIZE(failslab_set); i++) {
		if (i >= 3 && access(FAILSLAB "/require-start", F_OK))
			break;	/* no stack filter */
		ASSERT_EQ(0, knob_set(c, FAILSLAB, failslab_set[i].file,
				      failslab_set[i].val))
			TH_LOG("failslab/%s: cannot set %s",
			       failslab_set[i].file, failslab_set[i].val);
	}
	if (!access(FAILSLAB "/reject-start", F_OK)) {
		snprintf(val, sizeof(val), "%lu", rej_start);
		ASSERT_EQ(0, knob_set(c, FAILSLAB, "reject-start", val));
		snprintf(val, sizeof(val), "%lu", rej_end);
		ASSERT_EQ(0, knob_set(c, FAILSLAB, "reject-end", val));
	}
	if (!access(FAIL_PAGE, F_OK))
		ASSERT_EQ(0, knob_set(c, FAIL_PAGE, "min-order",
				      FAIL_PAGE_NO_ORDER));

	buf = sodp_map_anon(len);
	ASSERT_NE(NULL, buf);
	memset(buf, 0x5a, len);
	umems0 = dbg_get(_metadata, "umems");
	/* Opened once: reading and writing it allocates nothing. */
	nfd = open(path, O_RDWR);
	ASSERT_LE(0, nfd);

	/* The warm-up, and the length of the sequence, nothing failed. */
	for (i = 0; i < 2; i++) {
		cnt0 = reg_nth(c, nfd, INT_MAX, buf, len, &mr);
		ASSERT_NE(NULL, mr) TH_LOG("reg: %s", strerror(errno));
		ASSERT_LT(0, cnt0);
		ASSERT_EQ(0, ibv_dereg_mr(mr));
	}
	ASSERT_EQ(umems0, dbg_get(_metadata, "umems"));

	for (n = 1; n <= FAIL_NTH_MAX; n++) {
		cnt = reg_nth(c, nfd, n, buf, len, &mr);
		ASSERT_LT(0, cnt);
		umems = dbg_get(_metadata, "umems");
		if (mr) {
			ASSERT_EQ(umems0 + 1, umems);
			ASSERT_EQ(0, ibv_dereg_mr(mr));
			umems = dbg_get(_metadata, "umems");
		} else {
			ASSERT_EQ(n, cnt)
				TH_LOG("reg failed without injection: %s",
				       strerror(errno));
			failed++;
		}
		ASSERT_EQ(umems0, umems)
			TH_LOG("allocation %d failed: %lld umems leaked", n,
			       (long long)(umems - umems0));
		if (cnt < n)
			break;
	}
	close(nfd);
	sodp_unmap(buf, len);
	TH_LOG("%d allocations (%d without injection), %d registrations failed",
	       n - 1, cnt0, failed);
	ASSERT_GE(FAIL_NTH_MAX, n);
	ASSERT_LT(0, failed);
}

/*
 * A peer READ of a cold page of an ODP MR whose file lives on a suspended
 * block device: the responder's fault waits for the resume, for as long
 * as the device stays suspended (a stalled FUSE daemon, NFS server or
 * iSCSI target behaves alike). That must only hold up this QP: a READ on
 * each of OTHER_PAIRS other QPs of the device completes meanwhile, with
 * its bytes; after the resume the blocked READ completes with the file's.
 */
TEST_F_TIMEOUT(release, slow_store_other_qps, CASE_TIMEOUT)
{
	const size_t len = FILE_PAGES * PAGE_SZ;
	struct rel_ctx *c = &self->c;
	struct ibv_mr *omr, *odmr;
	uint8_t *obuf, *odst;
	struct ibv_wc wc;
	const char *why;
	ssize_t bad;
	int i;

	why = odp_missing(&c->dev.odp, IBV_ODP_SUPPORT_READ);
	if (why)
		SKIP(return, "%s: %s", c->name, why);
	why = slow_setup(c);
	if (why)
		SKIP(return, "%s", why);

	c->src = malloc(len + 2 * OTHER_PAIRS * OTHER_LEN);
	ASSERT_NE(NULL, c->src);
	memset(c->src, 0, len);
	c->smr = sodp_mr_reg(&c->dev, c->src, len, IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, c->smr);
	c->mr = sodp_mr_reg(&c->dev, c->map, len,
			    IBV_ACCESS_REMOTE_READ | IBV_ACCESS_ON_DEMAND);
	ASSERT_NE(NULL, c->mr) TH_LOG("ODP reg: %s", strerror(errno));
	ASSERT_EQ(0, sodp_pair_connect(&c->dev, &c->pair));
	c->connected = true;

	/* The other QPs: plain MRs, READs of one page each. */
	obuf = (uint8_t *)c->src + len;
	odst = obuf + OTHER_PAIRS * OTHER_LEN;
	sodp_pattern_fill(obuf, OTHER_PAIRS * OTHER_LEN, sodp_seed("others"),
			  0);
	memset(odst, 0, OTHER_PAIRS * OTHER_LEN);
	omr = sodp_mr_reg(&c->dev, obuf, OTHER_PAIRS * OTHER_LEN,
			  IBV_ACCESS_REMOTE_READ);
	ASSERT_NE(NULL, omr);
	odmr = sodp_mr_reg(&c->dev, odst, OTHER_PAIRS * OTHER_LEN,
			   IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, odmr);
	for (; c->nothers < OTHER_PAIRS; c->nothers++)
		ASSERT_EQ(0, sodp_pair_connect(&c->dev,
					       &c->others[c->nothers]));

	slow_suspend(_metadata, c);
	ASSERT_EQ(0, sodp_post_rdma(&c->pair.cli, IBV_WR_RDMA_READ, WRID_RDMA,
				    c->src, len, c->smr->lkey,
				    (uintptr_t)c->map, c->mr->rkey, 0));
	ASSERT_TRUE(blocked_in("hmm_range_fault"))
		TH_LOG("the responder's fault never blocked");

	for (i = 0; i < OTHER_PAIRS; i++) {
		ASSERT_EQ(0, sodp_post_rdma(&c->others[i].cli,
					    IBV_WR_RDMA_READ, WRID_RDMA + i,
					    odst + i * OTHER_LEN, OTHER_LEN,
					    odmr->lkey,
					    (uintptr_t)obuf + i * OTHER_LEN,
					    omr->rkey, 0));
		ASSERT_EQ(0, sodp_poll_one(c->others[i].cli.scq, &wc,
					   c->dev.timeout_ms))
			TH_LOG("QP %d: no completion while another QP's fault waits for the store",
			       i);
		ASSERT_EQ((int)IBV_WC_SUCCESS, (int)wc.status)
			TH_LOG("QP %d: %s", i, ibv_wc_status_str(wc.status));
		ASSERT_EQ(WRID_RDMA + i, wc.wr_id);
	}
	bad = sodp_pattern_check(odst, OTHER_PAIRS * OTHER_LEN,
				 sodp_seed("others"), 0);
	ASSERT_EQ(-1, bad) TH_LOG("other QPs' READ: byte %zd differs", bad);
	/* Still blocked: the completions above did not wait for the resume. */
	ASSERT_EQ(0, ibv_poll_cq(c->pair.cli.scq, 1, &wc));

	slow_resume(_metadata, c);
	ASSERT_EQ(0, sodp_poll_one(c->pair.cli.scq, &wc, c->dev.timeout_ms));
	ASSERT_EQ((int)IBV_WC_SUCCESS, (int)wc.status)
		TH_LOG("blocked READ: %s", ibv_wc_status_str(wc.status));
	ASSERT_EQ(WRID_RDMA, wc.wr_id);
	bad = sodp_pattern_check(c->src, len, sodp_seed("slow"), 0);
	ASSERT_EQ(-1, bad) TH_LOG("blocked READ: byte %zd differs", bad);

	sodp_mr_dereg(&omr);
	sodp_mr_dereg(&odmr);
}

/* Cases that must not keep the device open in the test process. */
FIXTURE(unload) {
	struct rel_ctx c;
};

FIXTURE_SETUP(unload)
{
	ctx_init(_metadata, &self->c);
}

FIXTURE_TEARDOWN(unload)
{
	ctx_teardown(_metadata, &self->c);
}

/* The device work of prefetch_unload, in a child: exit status 0 or step. */
static int prefetch_child(struct rel_ctx *c)
{
	const size_t len = FILE_PAGES * PAGE_SZ;
	struct ibv_sge sge;
	struct ibv_mr *mr;

	if (sodp_dev_open(&c->dev, c->name))
		return 10;
	mr = sodp_mr_reg(&c->dev, c->map, len, ODP_RW);
	if (!mr)
		return 11;
	sge.addr = (uintptr_t)c->map;
	sge.length = len;
	sge.lkey = mr->lkey;
	if (ibv_cmd_advise_mr(c->dev.pd, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
			      0, &sge, 1))
		return 12;
	if (!blocked_in("ext4_page_mkwrite"))
		return 13;
	if (sodp_mr_dereg(&mr))
		return 14;
	sodp_dev_close(&c->dev);
	/* Exiting closes the device (librdmacm keeps it open until then). */
	return 0;
}

/*
 * siw only: an asynchronous ibv_advise_mr(PREFETCH_WRITE) of a MAP_SHARED
 * ext4 file on a frozen file system blocks in ext4_page_mkwrite(); the MR
 * is deregistered, the process owning the device exits and siw0 is
 * deleted. siw cannot be unloaded while the prefetch holds it (rmmod
 * fails), can be once the thaw has let it finish, and is loaded again
 * with siw0 recreated. Before the fix rmmod succeeded and the prefetch,
 * after the thaw, called into the freed module.
 */
TEST_F_TIMEOUT(unload, prefetch_unload, CASE_TIMEOUT)
{
	struct ibv_device_attr_ex attr;
	struct rel_ctx *c = &self->c;
	uint64_t deadline;
	int64_t umems0;
	const char *why;
	bool iwarp;
	int ret, st;
	pid_t pid;

	ASSERT_EQ(0, sodp_dev_probe(c->name, &attr, &iwarp));
	if (!iwarp || strncmp(c->name, "siw", 3))
		SKIP(return, "%s: unloads siw, runs on siw devices only",
		     c->name);
	why = odp_missing(&attr.odp_caps, IBV_ODP_SUPPORT_WRITE);
	if (why)
		SKIP(return, "%s: %s", c->name, why);
	if (access("/sys/module/siw/refcnt", F_OK))
		SKIP(return, "siw is not a loadable module");
	why = file_setup(c);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, link_netdev(c->name, c->siw_netdev,
				 sizeof(c->siw_netdev)));

	umems0 = dbg_get(_metadata, "umems");
	freeze_for(_metadata, c, freeze_secs(true));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(prefetch_child(c));
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(0, WEXITSTATUS(st));

	c->siw_unloaded = true;
	ASSERT_EQ(0, sodp_run("rdma link delete %s", c->name));
	ret = sodp_run("rmmod siw 2>/dev/null");
	ASSERT_NE(0, ret) TH_LOG("siw unloaded under a pending prefetch");
	ASSERT_EQ(0, access("/sys/module/siw", F_OK));

	thaw_wait(_metadata, c);
	ASSERT_EQ(umems0, dbg_wait(_metadata, "umems", umems0,
				   SODP_TIMEOUT_MS_DEFAULT));
	/* The request drops its module reference right after the MR's. */
	deadline = now_ms() + SODP_TIMEOUT_MS_DEFAULT;
	while ((ret = sodp_run("rmmod siw 2>/dev/null")) && now_ms() < deadline)
		usleep(100 * 1000);
	ASSERT_EQ(0, ret) TH_LOG("siw still in use after the prefetch ended");
	ASSERT_EQ(0, dbg_get(_metadata, "pages_held"));

	siw_reload(_metadata, c);
}

TEST_HARNESS_MAIN
