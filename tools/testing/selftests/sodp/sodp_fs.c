// SPDX-License-Identifier: GPL-2.0
/*
 * File systems change a file's layout under a live sodp MR over a
 * MAP_SHARED mapping of it (issue 10, items 1 and 2).
 *
 * The file (FLEN bytes) has two halves. A stream thread keeps RDMA
 * WRITEs and READs (own QP pair; on RoCE also FETCH_ADDs) going into the
 * first half, each WRITE with a pattern of offset and generation, each
 * READ checked against the bytes just written. The main thread works on
 * the second half, one scenario per case: truncate shrink + regrow,
 * PUNCH_HOLE, ZERO_RANGE, COLLAPSE_RANGE, INSERT_RANGE, FICLONERANGE into
 * a second file followed by RDMA and CPU writes to the source (the clone
 * keeps the old bytes), write() through the fd over bytes RDMA wrote,
 * writeback (sync_file_range, then RDMA WRITEs to the cleaned pages, then
 * fsync with the stream running), fadvise DONTNEED + drop_caches, and
 * a MAP_PRIVATE mapping under its own MR (see run_private()).
 * After every operation the second half is compared byte for byte
 * through RDMA READ (second QP pair), the CPU mapping and pread() with a
 * byte model of the file, then RDMA WRITEs new bytes into it, waited for
 * until placed (siw completes a WRITE before it lands). An RDMA READ
 * past EOF after a shrink must fail (remote access error on RoCE, an
 * error status on iWARP); the check pair is then reconnected. At the end
 * the whole file is compared, then fsync, umount, mount and the file
 * (and clone) compared again with the model.
 *
 * Every operation is timed with the MR live and traffic running, and the
 * same operation on a file without MR or mapping in the same file system;
 * one over FS_OP_MAX_NS fails the case (a hang in a layout wait) and the
 * median and maximum of both are printed as "# timing" lines.
 *
 * Variants: file system (ext4 -o dax: SODP_DAX_DIR; xfs -o dax with
 * reflink: SODP_XFS_DAX_DIR; tmpfs: SODP_TMPFS_DIR; ext4 and xfs on a
 * RAM-backed loop device: SODP_EXT4_DIR, SODP_XFS_DIR) by MR kind
 * (explicit ODP, implicit ODP, plain MR under sodp.pin_mode=auto, which
 * sodp serves only where pinning is refused, i.e. FS-DAX). The whole
 * matrix takes about a quarter of an hour per device in a TCG guest;
 * make check runs a subset (-r options from scripts/guest-selftests.sh).
 *
 * Environment: SODP_DEVICE (required), the directories above, SODP_FS_OPS
 * (operations per case, default 4). Run as root (umount/mount,
 * drop_caches).
 */
#include "sodp_test.h"
#include <pthread.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <time.h>
#include <linux/falloc.h>
#include <linux/fs.h>

#define FLEN		(2UL << 20)	/* file and mapping */
#define HALF		(FLEN / 2)	/* stream half | layout half */
#define GRAN		(64UL << 10)	/* layout operation granule */
#define SCHUNK		(16UL << 10)	/* one stream WRITE */
#define XFER		(256UL << 10)	/* largest check transfer */
#define LBUF		(4UL << 20)	/* local buffers: stream | check */
#define CHK_OFF		(LBUF / 4)	/* check part of the local buffer */
#define WRID_RDMA	0x46535244ull
#define ODP_RW		(SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND)
#define CASE_TIMEOUT	600
#define FS_OP_MAX_NS	(10ULL * 1000000000ULL)
#define MAX_OPS		512
#define PIN_MODE	"/sys/module/sodp/parameters/pin_mode"

enum mr_kind { MR_ODP, MR_IMPLICIT, MR_PLAIN };

enum scen {
	SC_TRUNCATE, SC_PUNCH, SC_ZERO, SC_COLLAPSE, SC_INSERT, SC_CLONE,
	SC_WRITE, SC_WRITEBACK, SC_DROP, SC_PRIVATE,
};

static const char * const scen_name[] = {
	"truncate", "punch_hole", "zero_range", "collapse_range",
	"insert_range", "clone_range", "fd_write", "writeback", "drop_cache",
	"map_private",
};

struct fs_ctx {
	struct sodp_dev dev;
	struct sodp_pair sp;		/* stream pair */
	struct sodp_pair cp;		/* check pair */
	bool sp_up, cp_up;
	char dir[256];
	char path[320], cpath[340], npath[340];
	int fd, cfd, nfd, ncfd;	/* file, clone, no-MR twin, its clone */
	uint8_t *map;
	struct ibv_mr *mr;
	uint8_t *lbuf;
	struct ibv_mr *lmr;
	uint8_t *model;			/* the file's bytes */
	uint8_t *cmodel;		/* the clone's bytes */
	uint8_t *rbuf;			/* pread() buffer */
	size_t size;			/* current file size */
	uint32_t gen;			/* main thread's generation */
	uint64_t rng;
	bool dax;
	bool has_clone;
	char old_pin[16];
	/* stream thread */
	pthread_t thr;
	bool thr_up;
	int stop;			/* __atomic */
	int thr_err;			/* __atomic */
	char thr_msg[256];
	unsigned long thr_ops;
	/* timing, ns */
	uint64_t t_live[MAX_OPS], t_nomr[MAX_OPS];
	int nt;
};

FIXTURE(fs) {
	struct fs_ctx c;
};

FIXTURE_VARIANT(fs) {
	const char *fs;		/* name in the timing lines */
	const char *env;	/* the directory's variable */
	bool dax;
	enum mr_kind mr;
};

FIXTURE_VARIANT_ADD(fs, ext4_dax_odp) {
	.fs = "ext4_dax", .env = "SODP_DAX_DIR", .dax = true,
	.mr = MR_ODP,
};

FIXTURE_VARIANT_ADD(fs, ext4_dax_implicit) {
	.fs = "ext4_dax", .env = "SODP_DAX_DIR", .dax = true,
	.mr = MR_IMPLICIT,
};

FIXTURE_VARIANT_ADD(fs, ext4_dax_plain) {
	.fs = "ext4_dax", .env = "SODP_DAX_DIR", .dax = true,
	.mr = MR_PLAIN,
};

FIXTURE_VARIANT_ADD(fs, xfs_dax_odp) {
	.fs = "xfs_dax", .env = "SODP_XFS_DAX_DIR", .dax = true,
	.mr = MR_ODP,
};

FIXTURE_VARIANT_ADD(fs, xfs_dax_implicit) {
	.fs = "xfs_dax", .env = "SODP_XFS_DAX_DIR", .dax = true,
	.mr = MR_IMPLICIT,
};

FIXTURE_VARIANT_ADD(fs, xfs_dax_plain) {
	.fs = "xfs_dax", .env = "SODP_XFS_DAX_DIR", .dax = true,
	.mr = MR_PLAIN,
};

FIXTURE_VARIANT_ADD(fs, tmpfs_odp) {
	.fs = "tmpfs", .env = "SODP_TMPFS_DIR", .dax = false,
	.mr = MR_ODP,
};

FIXTURE_VARIANT_ADD(fs, tmpfs_implicit) {
	.fs = "tmpfs", .env = "SODP_TMPFS_DIR", .dax = false,
	.mr = MR_IMPLICIT,
};

FIXTURE_VARIANT_ADD(fs, tmpfs_plain) {
	.fs = "tmpfs", .env = "SODP_TMPFS_DIR", .dax = false,
	.mr = MR_PLAIN,
};

FIXTURE_VARIANT_ADD(fs, ext4_odp) {
	.fs = "ext4", .env = "SODP_EXT4_DIR", .dax = false,
	.mr = MR_ODP,
};

FIXTURE_VARIANT_ADD(fs, ext4_implicit) {
	.fs = "ext4", .env = "SODP_EXT4_DIR", .dax = false,
	.mr = MR_IMPLICIT,
};

FIXTURE_VARIANT_ADD(fs, ext4_plain) {
	.fs = "ext4", .env = "SODP_EXT4_DIR", .dax = false,
	.mr = MR_PLAIN,
};

FIXTURE_VARIANT_ADD(fs, xfs_odp) {
	.fs = "xfs", .env = "SODP_XFS_DIR", .dax = false,
	.mr = MR_ODP,
};

FIXTURE_VARIANT_ADD(fs, xfs_implicit) {
	.fs = "xfs", .env = "SODP_XFS_DIR", .dax = false,
	.mr = MR_IMPLICIT,
};

FIXTURE_VARIANT_ADD(fs, xfs_plain) {
	.fs = "xfs", .env = "SODP_XFS_DIR", .dax = false,
	.mr = MR_PLAIN,
};

static uint8_t pat(size_t off, uint32_t gen)
{
	return (uint8_t)(off * 7 + (off >> 9) * 13 + (off >> 17) +
			 gen * 0x35 + 1);
}

static void pat_fill(uint8_t *buf, size_t off, size_t len, uint32_t gen)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = pat(off + i, gen);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static uint32_t rnd(struct fs_ctx *c, uint32_t n)
{
	c->rng = c->rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(c->rng >> 33) % n;
}

/* One RDMA READ or WRITE on @pair at @raddr, waited for: status or -errno. */
static int rdma_at(struct fs_ctx *c, struct sodp_pair *pair,
		   enum ibv_wr_opcode op, void *local, size_t len,
		   const uint8_t *raddr, uint32_t rkey)
{
	struct ibv_wc wc;
	int err;

	err = sodp_post_rdma(&pair->cli, op, WRID_RDMA, local, len,
			     c->lmr->lkey, (uintptr_t)raddr, rkey, 0);
	if (err)
		return err;
	err = sodp_poll_one(pair->cli.scq, &wc, c->dev.timeout_ms);
	if (err)
		return err;
	return wc.status;
}

/* The same at @foff of the file MR. */
static int rdma_sync(struct fs_ctx *c, struct sodp_pair *pair,
		     enum ibv_wr_opcode op, void *local, size_t len,
		     size_t foff)
{
	return rdma_at(c, pair, op, local, len, c->map + foff, c->mr->rkey);
}

/* First differing byte of @a and @b, or -1. */
static ssize_t diff_at(const uint8_t *a, const uint8_t *b, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (a[i] != b[i])
			return i;
	return -1;
}

/* The stream thread's failure: @msg for the main thread, then @err. */
static void *stream_fail(struct fs_ctx *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->thr_msg, sizeof(c->thr_msg), fmt, ap);
	va_end(ap);
	__atomic_store_n(&c->thr_err, err, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * WRITE a chunk, READ it back and compare; on RoCE also a FETCH_ADD on
 * its first 8 bytes, whose old value must be the bytes just written.
 */
static void *stream_fn(void *arg)
{
	struct fs_ctx *c = arg;
	uint8_t *wb = c->lbuf, *rb = c->lbuf + SCHUNK;
	uint64_t *ab = (uint64_t *)(c->lbuf + 2 * SCHUNK);
	uint64_t rng = c->rng ^ 0x5eed, old;
	uint32_t gen = 1 << 20;
	struct ibv_wc wc;
	ssize_t at;
	size_t off;
	int st;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		rng = rng * 6364136223846793005ULL + 1;
		off = ((rng >> 33) % (HALF / SCHUNK)) * SCHUNK;
		gen++;
		pat_fill(wb, off, SCHUNK, gen);
		st = rdma_sync(c, &c->sp, IBV_WR_RDMA_WRITE, wb, SCHUNK, off);
		if (st)
			return stream_fail(c, st, "stream WRITE at %#zx: status %d",
					   off, st);
		memcpy(c->model + off, wb, SCHUNK);
		memset(rb, 0, SCHUNK);
		st = rdma_sync(c, &c->sp, IBV_WR_RDMA_READ, rb, SCHUNK, off);
		if (st)
			return stream_fail(c, st, "stream READ at %#zx: status %d",
					   off, st);
		at = diff_at(rb, wb, SCHUNK);
		if (at >= 0)
			return stream_fail(c, -EILSEQ,
					   "stream READ at %#zx: byte %#zx is %#x, wrote %#x",
					   off, (size_t)at, rb[at], wb[at]);
		c->thr_ops++;
		if (c->dev.iwarp)
			continue;
		*ab = 0;
		st = sodp_post_atomic(&c->sp.cli, IBV_WR_ATOMIC_FETCH_AND_ADD,
				      WRID_RDMA, ab, c->lmr->lkey,
				      (uintptr_t)(c->map + off), c->mr->rkey,
				      1, 0);
		if (!st)
			st = sodp_poll_one(c->sp.cli.scq, &wc,
					   c->dev.timeout_ms);
		if (!st)
			st = wc.status;
		if (st)
			return stream_fail(c, st, "stream FETCH_ADD at %#zx: status %d",
					   off, st);
		memcpy(&old, wb, sizeof(old));
		if (*ab != old)
			return stream_fail(c, -EILSEQ,
					   "stream FETCH_ADD at %#zx: old %#llx, wrote %#llx",
					   off, (unsigned long long)*ab,
					   (unsigned long long)old);
		old++;
		memcpy(c->model + off, &old, sizeof(old));
	}
	return NULL;
}

static void stream_start(struct __test_metadata *_metadata, struct fs_ctx *c)
{
	__atomic_store_n(&c->stop, 0, __ATOMIC_RELEASE);
	c->thr_ops = 0;
	ASSERT_EQ(0, pthread_create(&c->thr, NULL, stream_fn, c));
	c->thr_up = true;
}

static void stream_stop(struct __test_metadata *_metadata, struct fs_ctx *c)
{
	if (!c->thr_up)
		return;
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	pthread_join(c->thr, NULL);
	c->thr_up = false;
	ASSERT_EQ(0, c->thr_err) TH_LOG("%s", c->thr_msg);
}

static void cp_connect(struct __test_metadata *_metadata, struct fs_ctx *c)
{
	if (c->cp_up)
		sodp_pair_destroy(&c->cp);
	memset(&c->cp, 0, sizeof(c->cp));
	c->cp_up = false;
	ASSERT_EQ(0, sodp_pair_connect(&c->dev, &c->cp));
	c->cp_up = true;
}

/*
 * [off, off + len) of the file, all below EOF, through RDMA READ, the
 * CPU mapping and pread(), against the model.
 */
static void check_range(struct __test_metadata *_metadata, struct fs_ctx *c,
			size_t off, size_t len, const char *when)
{
	uint8_t *rb = c->lbuf + CHK_OFF;
	size_t o, n;
	ssize_t at;

	for (o = off; o < off + len; o += n) {
		n = off + len - o < XFER ? off + len - o : XFER;
		memset(rb, 0xa5, n);
		ASSERT_EQ(0, rdma_sync(c, &c->cp, IBV_WR_RDMA_READ, rb, n, o))
			TH_LOG("%s: RDMA READ at %#zx", when, o);
		ASSERT_EQ((ssize_t)n, pread(c->fd, c->rbuf, n, o));
		/* On a mismatch, all three views of that byte tell who is off. */
		at = diff_at(rb, c->model + o, n);
		ASSERT_EQ(-1, at)
			TH_LOG("%s: RDMA READ byte %#zx is %#x, model %#x (mapping %#x, pread %#x)",
			       when, o + at, rb[at], c->model[o + at],
			       c->map[o + at], c->rbuf[at]);
		at = diff_at(c->map + o, c->model + o, n);
		ASSERT_EQ(-1, at)
			TH_LOG("%s: mapping byte %#zx is %#x, model %#x (pread %#x)",
			       when, o + at, c->map[o + at], c->model[o + at],
			       c->rbuf[at]);
		at = diff_at(c->rbuf, c->model + o, n);
		ASSERT_EQ(-1, at)
			TH_LOG("%s: pread byte %#zx is %#x, model %#x", when,
			       o + at, c->rbuf[at], c->model[o + at]);
	}
}

/*
 * RDMA WRITE of a new generation into [off, off + len), below EOF, placed
 * in the file when this returns. A WRITE completion does not say that:
 * siw completes a WRITE once TCP has it (iWARP WRITEs are not
 * acknowledged), and a layout operation started then would run before
 * the WRITE lands (stale bytes after ZERO_RANGE or COLLAPSE_RANGE, a
 * WRITE past a new EOF that terminates the check pair).
 */
static void rdma_write(struct __test_metadata *_metadata, struct fs_ctx *c,
		       size_t off, size_t len)
{
	uint8_t *wb = c->lbuf + CHK_OFF;
	size_t o, n;

	c->gen++;
	for (o = off; o < off + len; o += n) {
		n = off + len - o < XFER ? off + len - o : XFER;
		pat_fill(wb, o, n, c->gen);
		ASSERT_EQ(0, rdma_sync(c, &c->cp, IBV_WR_RDMA_WRITE, wb, n, o))
			TH_LOG("RDMA WRITE at %#zx", o);
		memcpy(c->model + o, wb, n);
	}
	ASSERT_EQ(0, sodp_pair_sync(&c->cp));
}

/*
 * An RDMA READ of the page at @off, past EOF, is refused: on RoCE with
 * a remote access error, on iWARP with some error status. The check pair
 * is left in error and reconnected.
 */
static void read_past_eof(struct __test_metadata *_metadata, struct fs_ctx *c,
			  size_t off)
{
	int st;

	st = rdma_sync(c, &c->cp, IBV_WR_RDMA_READ, c->lbuf + CHK_OFF, 4096,
		       off);
	ASSERT_LE(0, st) TH_LOG("READ past EOF at %#zx: %s", off,
				strerror(-st));
	if (!c->dev.iwarp) {
		ASSERT_EQ(IBV_WC_REM_ACCESS_ERR, st)
			TH_LOG("READ past EOF at %#zx: %s", off,
			       ibv_wc_status_str(st));
	} else {
		ASSERT_NE(IBV_WC_SUCCESS, st)
			TH_LOG("READ past EOF at %#zx succeeded", off);
	}
	cp_connect(_metadata, c);
}

/* echo 1 >/proc/sys/vm/drop_caches: clean, unmapped page cache goes. */
static void drop_pagecache(struct __test_metadata *_metadata)
{
	FILE *f = fopen("/proc/sys/vm/drop_caches", "w");

	ASSERT_NE(NULL, f);
	fputs("1", f);
	ASSERT_EQ(0, fclose(f));
}

static bool op_refused(int err)
{
	return err == EOPNOTSUPP || err == EINVAL || err == EXDEV ||
	       err == ENOTTY;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void timing_report(struct __test_metadata *_metadata,
			  const FIXTURE_VARIANT(fs) *variant,
			  struct fs_ctx *c, enum scen sc)
{
	static const char * const mr[] = { "odp", "implicit", "plain" };
	uint64_t *l = c->t_live, *n = c->t_nomr;

	if (!c->nt)
		return;
	qsort(l, c->nt, sizeof(*l), cmp_u64);
	qsort(n, c->nt, sizeof(*n), cmp_u64);
	printf("# timing %s %s %s n=%d live: median %llu us max %llu us;",
	       variant->fs, mr[variant->mr], scen_name[sc], c->nt,
	       (unsigned long long)l[c->nt / 2] / 1000,
	       (unsigned long long)l[c->nt - 1] / 1000);
	printf(" no MR: median %llu us max %llu us\n",
	       (unsigned long long)n[c->nt / 2] / 1000,
	       (unsigned long long)n[c->nt - 1] / 1000);
	ASSERT_GT(FS_OP_MAX_NS, l[c->nt - 1])
		TH_LOG("%s took %llu ms with the MR live", scen_name[sc],
		       (unsigned long long)l[c->nt - 1] / 1000000);
	ASSERT_GT(FS_OP_MAX_NS, n[c->nt - 1]);
}

static int write_file(int fd, const uint8_t *buf, size_t len)
{
	return pwrite(fd, buf, len, 0) == (ssize_t)len ? 0 : -1;
}

FIXTURE_SETUP(fs)
{
	struct fs_ctx *c = &self->c;
	const char *name = getenv("SODP_DEVICE");
	const char *dir = getenv(variant->env);
	struct statx stx;
	int access = ODP_RW;
	FILE *f;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->cfd = -1;
	c->nfd = -1;
	c->ncfd = -1;
	if (!name)
		SKIP(return, "SODP_DEVICE is not set");
	if (!dir || !*dir)
		SKIP(return, "%s is not set", variant->env);
	if (geteuid())
		SKIP(return, "needs root");
	snprintf(c->dir, sizeof(c->dir), "%s", dir);
	c->dax = variant->dax;
	ASSERT_EQ(0, sodp_dev_open(&c->dev, name));
	if (variant->mr == MR_IMPLICIT &&
	    !(c->dev.odp.general_caps & IBV_ODP_SUPPORT_IMPLICIT))
		SKIP(return, "%s has no implicit ODP", name);
	if (variant->mr != MR_PLAIN &&
	    !(c->dev.odp.general_caps & IBV_ODP_SUPPORT))
		SKIP(return, "%s has no ODP", name);
	if (variant->mr == MR_PLAIN) {
		/*
		 * pin_mode=auto serves a plain MR with sodp only where
		 * pinning is refused (FS-DAX); elsewhere the MR pins the
		 * page cache, which the layout operations then leave
		 * behind, as with any pinned MR.
		 */
		if (!c->dax)
			SKIP(return, "plain MR pins page cache (pin_mode=auto)");
		f = fopen(PIN_MODE, "r");
		if (!f)
			SKIP(return, "no %s (stock kernel)", PIN_MODE);
		if (!fgets(c->old_pin, sizeof(c->old_pin), f))
			c->old_pin[0] = 0;
		fclose(f);
		c->old_pin[strcspn(c->old_pin, "\n")] = 0;
		f = fopen(PIN_MODE, "w");
		ASSERT_NE(NULL, f);
		fputs("auto", f);
		ASSERT_EQ(0, fclose(f));
		access = SODP_ACCESS_RW;
	}
	/* The stream's FETCH_ADDs; siw has no atomics on user MRs. */
	if (!c->dev.iwarp)
		access |= IBV_ACCESS_REMOTE_ATOMIC;

	c->rng = sodp_seed(_metadata->name);
	c->model = malloc(FLEN);
	c->cmodel = malloc(FLEN);
	c->rbuf = malloc(XFER);
	ASSERT_NE(NULL, c->model);
	ASSERT_NE(NULL, c->cmodel);
	ASSERT_NE(NULL, c->rbuf);
	pat_fill(c->model, 0, FLEN, 0);
	c->size = FLEN;

	snprintf(c->path, sizeof(c->path), "%s/sodp_fs.%d", dir, getpid());
	snprintf(c->cpath, sizeof(c->cpath), "%s.clone", c->path);
	snprintf(c->npath, sizeof(c->npath), "%s.nomr", c->path);
	c->fd = open(c->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, c->fd) TH_LOG("open(%s): %s", c->path, strerror(errno));
	c->nfd = open(c->npath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, c->nfd);
	ASSERT_EQ(0, write_file(c->fd, c->model, FLEN));
	ASSERT_EQ(0, write_file(c->nfd, c->model, FLEN));
	ASSERT_EQ(0, fsync(c->fd));
	if (c->dax) {
		ASSERT_EQ(0, statx(c->fd, "", AT_EMPTY_PATH,
				   STATX_BASIC_STATS, &stx));
		ASSERT_TRUE(!!(stx.stx_attributes & STATX_ATTR_DAX))
			TH_LOG("%s is not FS-DAX", dir);
	}
	c->map = mmap(NULL, FLEN, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd,
		      0);
	ASSERT_NE(MAP_FAILED, c->map);
	if (variant->mr == MR_IMPLICIT)
		c->mr = sodp_mr_reg(&c->dev, NULL, SIZE_MAX, access);
	else
		c->mr = sodp_mr_reg(&c->dev, c->map, FLEN, access);
	ASSERT_NE(NULL, c->mr) TH_LOG("file MR: %s", strerror(errno));
	c->lbuf = sodp_map_anon(LBUF);
	ASSERT_NE(NULL, c->lbuf);
	c->lmr = sodp_mr_reg(&c->dev, c->lbuf, LBUF, SODP_ACCESS_RW);
	ASSERT_NE(NULL, c->lmr);
	ASSERT_EQ(0, sodp_pair_connect(&c->dev, &c->sp));
	c->sp_up = true;
	cp_connect(_metadata, c);
}

FIXTURE_TEARDOWN(fs)
{
	struct fs_ctx *c = &self->c;
	FILE *f;

	if (c->thr_up) {
		__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
		pthread_join(c->thr, NULL);
	}
	if (c->cp_up)
		sodp_pair_destroy(&c->cp);
	if (c->sp_up)
		sodp_pair_destroy(&c->sp);
	if (c->mr)
		sodp_mr_dereg(&c->mr);
	if (c->lmr)
		sodp_mr_dereg(&c->lmr);
	if (c->lbuf)
		sodp_unmap(c->lbuf, LBUF);
	if (c->map && c->map != MAP_FAILED)
		munmap(c->map, FLEN);
	if (c->fd >= 0)
		close(c->fd);
	if (c->cfd >= 0)
		close(c->cfd);
	if (c->nfd >= 0)
		close(c->nfd);
	if (c->ncfd >= 0)
		close(c->ncfd);
	if (c->path[0]) {
		unlink(c->path);
		unlink(c->cpath);
		unlink(c->npath);
	}
	if (c->old_pin[0]) {
		f = fopen(PIN_MODE, "w");
		if (f) {
			fputs(c->old_pin, f);
			fclose(f);
		}
	}
	free(c->model);
	free(c->cmodel);
	free(c->rbuf);
	sodp_dev_close(&c->dev);
}

/* A timed file operation. */
enum lop_kind { LOP_TRUNCATE, LOP_FALLOC, LOP_PWRITE, LOP_SYNC_RANGE,
		LOP_FSYNC, LOP_FADVISE };

struct lop {
	enum lop_kind kind;
	int mode;		/* fallocate mode, sync_file_range flags */
	off_t off;
	size_t len;
	const void *buf;	/* LOP_PWRITE */
};

/* @o on @fd: 0, or -1 with errno set. */
static int lop_run(int fd, const struct lop *o)
{
	int err;

	switch (o->kind) {
	case LOP_TRUNCATE:
		return ftruncate(fd, o->off);
	case LOP_FALLOC:
		return fallocate(fd, o->mode, o->off, o->len);
	case LOP_PWRITE:
		if (pwrite(fd, o->buf, o->len, o->off) == (ssize_t)o->len)
			return 0;
		if (!errno)
			errno = EIO;
		return -1;
	case LOP_SYNC_RANGE:
		return sync_file_range(fd, o->off, o->len, o->mode);
	case LOP_FSYNC:
		return fsync(fd);
	case LOP_FADVISE:
		err = posix_fadvise(fd, o->off, o->len, POSIX_FADV_DONTNEED);
		errno = err;
		return err ? -1 : 0;
	}
	errno = EINVAL;
	return -1;
}

/*
 * The operation on the live file, then on the no-MR twin, both timed:
 * 0 or the live file's errno.
 */
static int timed(struct fs_ctx *c, enum lop_kind kind, int mode, off_t off,
		 size_t len, const void *buf)
{
	const struct lop o = {
		.kind = kind, .mode = mode, .off = off, .len = len, .buf = buf,
	};
	uint64_t t0, t1, t2;
	int r, n;

	t0 = now_ns();
	r = lop_run(c->fd, &o) ? errno : 0;
	t1 = now_ns();
	if (r)
		return r;
	n = lop_run(c->nfd, &o) ? errno : 0;
	t2 = now_ns();
	if (n)
		printf("# no-MR twin: %s\n", strerror(n));
	if (c->nt < MAX_OPS) {
		c->t_live[c->nt] = t1 - t0;
		c->t_nomr[c->nt++] = t2 - t1;
	}
	return 0;
}

static int do_clone(int fd, int dfd, size_t off, size_t len)
{
	struct file_clone_range r = {
		.src_fd = fd, .src_offset = off, .src_length = len,
		.dest_offset = off,
	};

	return ioctl(dfd, FICLONERANGE, &r);
}

/*
 * Remount the file system and compare the file (and clone) with the
 * model. tmpfs would lose the files: it is only reopened.
 */
static void remount_check(struct __test_metadata *_metadata,
			  struct fs_ctx *c)
{
	char src[256] = "", type[32] = "", mnt[256], opts[512], cmd[1400];
	char line[1400], back[300] = "";
	bool loop = false;
	ssize_t at;
	FILE *f;
	int fd;

	ASSERT_EQ(0, sodp_mr_dereg(&c->mr));
	ASSERT_EQ(0, munmap(c->map, FLEN));
	c->map = NULL;
	ASSERT_EQ(0, fsync(c->fd));
	close(c->fd);
	c->fd = -1;
	close(c->nfd);
	c->nfd = -1;
	if (c->ncfd >= 0) {
		close(c->ncfd);
		c->ncfd = -1;
	}
	if (c->cfd >= 0) {
		ASSERT_EQ(0, fsync(c->cfd));
		close(c->cfd);
		c->cfd = -1;
	}

	f = fopen("/proc/mounts", "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%255s %255s %31s %511s", src, mnt, type,
			   opts) == 4 && !strcmp(mnt, c->dir))
			break;
		src[0] = 0;
	}
	fclose(f);
	ASSERT_NE(0, src[0]) TH_LOG("%s is not a mount point", c->dir);
	if (strcmp(type, "tmpfs")) {
		if (!strncmp(src, "/dev/loop", 9)) {
			snprintf(cmd, sizeof(cmd),
				 "/sys/block/%s/loop/backing_file", src + 5);
			f = fopen(cmd, "r");
			ASSERT_NE(NULL, f);
			ASSERT_NE(NULL, fgets(back, sizeof(back), f));
			fclose(f);
			back[strcspn(back, "\n")] = 0;
			loop = true;
		}
		snprintf(cmd, sizeof(cmd),
			 "umount %s && mount -t %s -o %s%s %s %s", c->dir, type,
			 c->dax ? "dax" : "rw", loop ? ",loop" : "",
			 loop ? back : src, c->dir);
		ASSERT_EQ(0, system(cmd)) TH_LOG("%s failed", cmd);
	}

	for (int which = 0; which < 1 + c->has_clone; which++) {
		const uint8_t *m = which ? c->cmodel : c->model;
		size_t o;

		fd = open(which ? c->cpath : c->path, O_RDONLY);
		ASSERT_LE(0, fd);
		for (o = 0; o < c->size; o += XFER) {
			ASSERT_EQ((ssize_t)XFER, pread(fd, c->rbuf, XFER, o));
			at = diff_at(c->rbuf, m + o, XFER);
			ASSERT_EQ(-1, at)
				TH_LOG("after remount, %s byte %#zx is %#x, model %#x",
				       which ? "clone" : "file", o + at,
				       c->rbuf[at], m[o + at]);
		}
		close(fd);
	}
}

#define PG	4096UL

/*
 * A MAP_PRIVATE mapping of the file under its own ODP MR (the implicit
 * MR covers it too): each step RDMA WRITEs one page of it (a private
 * copy only this mapping sees), READs the next (mirrored, still the
 * file's page), then write()s both pages through the fd. The written
 * page keeps the RDMA bytes, the other follows the file, through RDMA
 * READ and the CPU alike; the file gets only the write(). The stream
 * runs on the MAP_SHARED MR meanwhile.
 */
static void run_private(struct __test_metadata *_metadata,
			const FIXTURE_VARIANT(fs) *variant, struct fs_ctx *c,
			int nops)
{
	uint8_t *pm, *wb = c->lbuf + CHK_OFF, *rb = wb + 2 * PG;
	uint8_t *pmodel = c->cmodel;	/* the private copies */
	bool cow[HALF / PG] = { false };
	size_t off, o, p, at;
	struct ibv_mr *pmr;
	char when[96];
	int i;

	pm = mmap(NULL, FLEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, c->fd, 0);
	ASSERT_NE(MAP_FAILED, pm);
	if (variant->mr == MR_IMPLICIT)
		pmr = c->mr;
	else
		pmr = sodp_mr_reg(&c->dev, pm, FLEN, ODP_RW);
	ASSERT_NE(NULL, pmr) TH_LOG("private MR: %s", strerror(errno));
	stream_start(_metadata, c);
	for (i = 0; i < nops; i++) {
		off = HALF + rnd(c, HALF / PG - 1) * PG;
		snprintf(when, sizeof(when), "map_private #%d [%#zx, +%#lx)",
			 i, off, 2 * PG);
		pat_fill(wb, off, PG, ++c->gen);
		ASSERT_EQ(0, rdma_at(c, &c->cp, IBV_WR_RDMA_WRITE, wb, PG,
				     pm + off, pmr->rkey));
		ASSERT_EQ(0, sodp_pair_sync(&c->cp));
		memcpy(pmodel + off, wb, PG);
		cow[(off - HALF) / PG] = true;
		ASSERT_EQ(0, rdma_at(c, &c->cp, IBV_WR_RDMA_READ, rb, PG,
				     pm + off + PG, pmr->rkey));
		/* write() through the fd over both pages */
		pat_fill(wb, off, 2 * PG, ++c->gen);
		ASSERT_EQ(0, timed(c, LOP_PWRITE, 0, off, 2 * PG, wb));
		memcpy(c->model + off, wb, 2 * PG);
		memset(rb, 0xa5, 2 * PG);
		ASSERT_EQ(0, rdma_at(c, &c->cp, IBV_WR_RDMA_READ, rb, 2 * PG,
				     pm + off, pmr->rkey));
		for (o = 0; o < 2 * PG; o++) {
			p = (off + o - HALF) / PG;
			at = off + o;
			ASSERT_EQ((cow[p] ? pmodel : c->model)[at], rb[o])
				TH_LOG("%s: RDMA READ byte %#zx (%s page)", when,
				       at, cow[p] ? "private" : "file");
			ASSERT_EQ((cow[p] ? pmodel : c->model)[at], pm[at])
				TH_LOG("%s: mapping byte %#zx (%s page)", when,
				       at, cow[p] ? "private" : "file");
		}
		check_range(_metadata, c, HALF, HALF, when);
		ASSERT_EQ(0, __atomic_load_n(&c->thr_err, __ATOMIC_ACQUIRE))
			TH_LOG("%s", c->thr_msg);
	}
	stream_stop(_metadata, c);
	if (pmr != c->mr)
		ASSERT_EQ(0, sodp_mr_dereg(&pmr));
	ASSERT_EQ(0, munmap(pm, FLEN));
	check_range(_metadata, c, 0, FLEN, "end");
	timing_report(_metadata, variant, c, SC_PRIVATE);
	remount_check(_metadata, c);
}

static void run(struct __test_metadata *_metadata,
		const FIXTURE_VARIANT(fs) *variant, struct fs_ctx *c,
		enum scen sc)
{
	const char *e = getenv("SODP_FS_OPS");
	int nops = e ? atoi(e) : 4;
	const size_t blocks = HALF / GRAN;
	size_t off, len, ns;
	char when[96], ncpath[360];
	uint8_t *wb;
	int i, err;

	if (nops < 1 || nops > MAX_OPS)
		nops = 4;
	if (sc == SC_PRIVATE) {
		/*
		 * A plain MR with write access breaks COW over the whole
		 * private mapping at registration: nothing follows the file.
		 */
		if (variant->mr == MR_PLAIN)
			SKIP(return, "plain MR: private pages copied at registration");
		run_private(_metadata, variant, c, nops);
		return;
	}
	if (sc == SC_CLONE) {
		c->cfd = open(c->cpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
		ASSERT_LE(0, c->cfd);
		ASSERT_EQ(0, ftruncate(c->cfd, FLEN));
		memset(c->cmodel, 0, FLEN);
		c->has_clone = true;
		snprintf(ncpath, sizeof(ncpath), "%s.clone", c->npath);
		c->ncfd = open(ncpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
		ASSERT_LE(0, c->ncfd);
		unlink(ncpath);
	}
	stream_start(_metadata, c);
	for (i = 0; i < nops; i++) {
		off = HALF + rnd(c, blocks) * GRAN;
		len = (1 + rnd(c, 4)) * GRAN;
		if (off + len > FLEN)
			len = FLEN - off;
		snprintf(when, sizeof(when), "%s #%d [%#zx, +%#zx)",
			 scen_name[sc], i, off, len);
		switch (sc) {
		case SC_TRUNCATE:
			if (off == HALF)
				off += GRAN;
			err = timed(c, LOP_TRUNCATE, 0, off, 0, NULL);
			ASSERT_EQ(0, err) TH_LOG("%s: %s", when, strerror(err));
			memset(c->model + off, 0, FLEN - off);
			c->size = off;
			check_range(_metadata, c, HALF, off - HALF, when);
			read_past_eof(_metadata, c, off);
			/* each one costs a reconnect: the far end once */
			if (!i)
				read_past_eof(_metadata, c, FLEN - 4096);
			err = timed(c, LOP_TRUNCATE, 0, FLEN, 0, NULL);
			ASSERT_EQ(0, err);
			c->size = FLEN;
			break;
		case SC_PUNCH:
		case SC_ZERO:
			err = timed(c, LOP_FALLOC, sc == SC_PUNCH ?
				    FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE :
				    FALLOC_FL_ZERO_RANGE, off, len, NULL);
			if (op_refused(err) && !i) {
				stream_stop(_metadata, c);
				SKIP(return, "%s refuses %s: %s", variant->fs,
				     scen_name[sc], strerror(err));
			}
			ASSERT_EQ(0, err) TH_LOG("%s: %s", when, strerror(err));
			memset(c->model + off, 0, len);
			break;
		case SC_COLLAPSE:
			if (off + len >= FLEN)
				len = FLEN - off - GRAN;
			if (!len) {
				off -= GRAN;
				len = GRAN;
			}
			err = timed(c, LOP_FALLOC, FALLOC_FL_COLLAPSE_RANGE,
				    off, len, NULL);
			if (op_refused(err) && !i) {
				stream_stop(_metadata, c);
				SKIP(return, "%s refuses %s: %s", variant->fs,
				     scen_name[sc], strerror(err));
			}
			ASSERT_EQ(0, err) TH_LOG("%s: %s", when, strerror(err));
			memmove(c->model + off, c->model + off + len,
				FLEN - off - len);
			memset(c->model + FLEN - len, 0, len);
			c->size = FLEN - len;
			check_range(_metadata, c, HALF, c->size - HALF, when);
			read_past_eof(_metadata, c, c->size);
			err = timed(c, LOP_TRUNCATE, 0, FLEN, 0, NULL);
			ASSERT_EQ(0, err);
			c->size = FLEN;
			break;
		case SC_INSERT:
			if (off + len >= FLEN) {
				len = GRAN;
				off = FLEN - 2 * GRAN;
			}
			err = timed(c, LOP_TRUNCATE, 0, FLEN - len, 0, NULL);
			ASSERT_EQ(0, err);
			memset(c->model + FLEN - len, 0, len);
			c->size = FLEN - len;
			err = timed(c, LOP_FALLOC, FALLOC_FL_INSERT_RANGE,
				    off, len, NULL);
			if (op_refused(err) && !i) {
				stream_stop(_metadata, c);
				SKIP(return, "%s refuses %s: %s", variant->fs,
				     scen_name[sc], strerror(err));
			}
			ASSERT_EQ(0, err) TH_LOG("%s: %s", when, strerror(err));
			memmove(c->model + off + len, c->model + off,
				FLEN - off - len);
			memset(c->model + off, 0, len);
			c->size = FLEN;
			break;
		case SC_CLONE:
			/* FICLONERANGE on the destination's fd */
			{
				uint64_t t0 = now_ns(), t1;

				err = do_clone(c->fd, c->cfd, off, len) ?
				      errno : 0;
				t1 = now_ns();
				if (op_refused(err) && !i) {
					stream_stop(_metadata, c);
					SKIP(return, "%s refuses %s: %s",
					     variant->fs, scen_name[sc],
					     strerror(err));
				}
				ASSERT_EQ(0, err)
					TH_LOG("%s: %s", when, strerror(err));
				memcpy(c->cmodel + off, c->model + off, len);
				c->t_live[c->nt] = t1 - t0;
				ASSERT_EQ(0, do_clone(c->nfd, c->ncfd, off,
						      len));
				c->t_nomr[c->nt++] = now_ns() - t1;
			}
			/*
			 * Writes to the source, by RDMA and by a CPU store
			 * through the mapping made before the clone: the
			 * clone keeps the old bytes.
			 */
			rdma_write(_metadata, c, off, len);
			ns = off + len - 4096;
			pat_fill(c->map + ns, ns, 4096, ++c->gen);
			memcpy(c->model + ns, c->map + ns, 4096);
			check_range(_metadata, c, off, len, when);
			ASSERT_EQ((ssize_t)len, pread(c->cfd, c->rbuf, len,
						      off));
			ASSERT_EQ(-1, diff_at(c->rbuf, c->cmodel + off, len))
				TH_LOG("%s: clone changed with the source",
				       when);
			break;
		case SC_WRITE:
			rdma_write(_metadata, c, off, len);
			ns = len / 2 + 100;
			wb = c->rbuf;
			pat_fill(wb, off + 50, ns, ++c->gen);
			err = timed(c, LOP_PWRITE, 0, off + 50, ns, wb);
			ASSERT_EQ(0, err);
			memcpy(c->model + off + 50, wb, ns);
			break;
		case SC_WRITEBACK:
			/*
			 * Writeback cleans (write-protects) the pages RDMA
			 * dirtied; the WRITE after it must dirty them again
			 * or the fsync, umount and remount lose it. The
			 * fsync runs with the stream writing.
			 */
			rdma_write(_metadata, c, off, len);
			err = timed(c, LOP_SYNC_RANGE,
				    SYNC_FILE_RANGE_WAIT_BEFORE |
				    SYNC_FILE_RANGE_WRITE |
				    SYNC_FILE_RANGE_WAIT_AFTER, off, len, NULL);
			ASSERT_EQ(0, err) TH_LOG("%s: %s", when, strerror(err));
			rdma_write(_metadata, c, off, len);
			err = timed(c, LOP_FSYNC, 0, 0, 0, NULL);
			ASSERT_EQ(0, err) TH_LOG("%s: %s", when, strerror(err));
			rdma_write(_metadata, c, off, len);
			break;
		case SC_DROP:
			/* Clean the range, then ask for its pages to go. */
			rdma_write(_metadata, c, off, len);
			err = timed(c, LOP_FSYNC, 0, 0, 0, NULL);
			ASSERT_EQ(0, err) TH_LOG("%s: %s", when, strerror(err));
			err = timed(c, LOP_FADVISE, 0, off, len, NULL);
			ASSERT_EQ(0, err) TH_LOG("%s: %s", when, strerror(err));
			drop_pagecache(_metadata);
			break;
		case SC_PRIVATE:	/* run_private() */
			break;
		}
		check_range(_metadata, c, HALF, HALF, when);
		off = HALF + rnd(c, blocks) * GRAN;
		rdma_write(_metadata, c, off, GRAN);
		ASSERT_EQ(0, __atomic_load_n(&c->thr_err, __ATOMIC_ACQUIRE))
			TH_LOG("%s", c->thr_msg);
	}
	stream_stop(_metadata, c);
	TH_LOG("%d operations, %lu stream WRITE+READs", nops, c->thr_ops);
	check_range(_metadata, c, 0, FLEN, "end");
	timing_report(_metadata, variant, c, sc);
	remount_check(_metadata, c);
}

TEST_F_TIMEOUT(fs, truncate, CASE_TIMEOUT)
{
	run(_metadata, variant, &self->c, SC_TRUNCATE);
}

TEST_F_TIMEOUT(fs, punch_hole, CASE_TIMEOUT)
{
	run(_metadata, variant, &self->c, SC_PUNCH);
}

TEST_F_TIMEOUT(fs, zero_range, CASE_TIMEOUT)
{
	run(_metadata, variant, &self->c, SC_ZERO);
}

TEST_F_TIMEOUT(fs, collapse_range, CASE_TIMEOUT)
{
	run(_metadata, variant, &self->c, SC_COLLAPSE);
}

TEST_F_TIMEOUT(fs, insert_range, CASE_TIMEOUT)
{
	run(_metadata, variant, &self->c, SC_INSERT);
}

TEST_F_TIMEOUT(fs, clone_range, CASE_TIMEOUT)
{
	run(_metadata, variant, &self->c, SC_CLONE);
}

TEST_F_TIMEOUT(fs, fd_write, CASE_TIMEOUT)
{
	run(_metadata, variant, &self->c, SC_WRITE);
}

TEST_F_TIMEOUT(fs, writeback, CASE_TIMEOUT)
{
	run(_metadata, variant, &self->c, SC_WRITEBACK);
}

TEST_F_TIMEOUT(fs, drop_cache, CASE_TIMEOUT)
{
	run(_metadata, variant, &self->c, SC_DROP);
}

TEST_F_TIMEOUT(fs, map_private, CASE_TIMEOUT)
{
	run(_metadata, variant, &self->c, SC_PRIVATE);
}

TEST_HARNESS_MAIN
