// SPDX-License-Identifier: GPL-2.0
/*
 * Memory hot-unplug under live RDMA (issue 10, item 3).
 *
 * The guest has a hot-pluggable DIMM whose memory blocks the kernel left
 * offline (QEMU pc-dimm, memhp_default_state=offline: check.sh). Each case
 * onlines one of them to ZONE_MOVABLE, the only movable memory, so the
 * anonymous memory it then maps lies in that block, with next to nothing
 * else. An MR is registered over it, and a WRITE + READ-back stream runs
 * through it (sodp_stream: every byte checked by RDMA READ and the CPU):
 *
 *  - odp, plain_all (ODP MR; plain MR under sodp.pin_mode=all): the
 *    registration leaves the pages where they are; offlining the block
 *    with the stream running succeeds, migrates every page of the MR out
 *    of it (sodp's invalidations count it), the stream goes on and the
 *    untouched part of the MR keeps its bytes.
 *  - plain_pin (sodp.pin_mode=pin, the stock behaviour): long-term pinning
 *    migrates the pages out of ZONE_MOVABLE at registration; the block
 *    they were pinned in (not movable) cannot be offlined while the MR
 *    lives: the write fails (EBUSY, or EINTR when the bound ran out while
 *    the kernel retried the migration), and the block stays online.
 *
 * The teardown takes the DIMM block offline again.
 *
 * Environment: SODP_DEVICE (required). Run as root (pagemap PFNs, sysfs).
 */
#include "sodp_test.h"
#include <dirent.h>
#include <signal.h>
#include <time.h>

#define PAGE_SZ		4096UL
#define MEMDIR		"/sys/devices/system/memory"
#define STATIC_PAGES	256	/* written once, must survive the migration */
#define STREAM_PAGES	16	/* per stream buffer (tgt, src, dst) */
#define BUF_PAGES	(2 * STATIC_PAGES + 3 * STREAM_PAGES)
#define ODP_RW		(SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND)
#define CASE_TIMEOUT	600	/* seconds, TCG guest */
#define OFFLINE_SECS	120	/* bound on offlining the MR's block */
#define PINNED_SECS	20	/* bound on the attempt that must fail */
#define STREAM_ITERS	5ULL	/* stream iterations before and after */

FIXTURE(memhp) {
	struct sodp_dev dev;
	struct sodp_pair pair;
	uint64_t seed;
	uint64_t block_bytes;	/* block_size_bytes */
	uint8_t *buf;		/* static | readback | tgt | src | dst */
	struct ibv_mr *mr;
	struct sodp_stream s;
	long onlined;		/* the DIMM block this case onlined, or -1 */
	long offlined;		/* a block to put back online, or -1 */
	char pin_saved[16];	/* pin_mode to restore, "" if unchanged */
};

FIXTURE_VARIANT(memhp) {
	int access;
	const char *pin_mode;	/* NULL: leave it */
	bool pinned;		/* the registration pins */
};

FIXTURE_VARIANT_ADD(memhp, odp) {
	.access = ODP_RW,
};

FIXTURE_VARIANT_ADD(memhp, plain_all) {
	.access = SODP_ACCESS_RW,
	.pin_mode = "all",
};

FIXTURE_VARIANT_ADD(memhp, plain_pin) {
	.access = SODP_ACCESS_RW,
	.pin_mode = "pin",
	.pinned = true,
};

/* "online"/"offline" and the zone of memory block @blk; 0 or -errno. */
static int block_get(long blk, char *state, char *zones, size_t len)
{
	char path[128];
	int ret;

	snprintf(path, sizeof(path), MEMDIR "/memory%ld/state", blk);
	ret = sodp_read_line(path, state, len);
	if (ret)
		return ret;
	snprintf(path, sizeof(path), MEMDIR "/memory%ld/valid_zones", blk);
	return sodp_read_line(path, zones, len);
}

static bool block_movable(long blk)
{
	char state[64], zones[64];

	return !block_get(blk, state, zones, sizeof(state)) &&
	       !strcmp(state, "online") && !strcmp(zones, "Movable");
}

static void on_alarm(int sig)
{
	(void)sig;
}

/*
 * Set memory block @blk to @state ("offline", "online_movable"), giving up
 * after @secs (SIGALRM interrupts the kernel's migration retries).
 * Return: 0 or -errno of the write; *@ms: how long it took.
 */
static int block_set(long blk, const char *state, unsigned int secs,
		     uint64_t *ms)
{
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct timespec t0, t1;
	char path[128];
	int ret;

	snprintf(path, sizeof(path), MEMDIR "/memory%ld/state", blk);
	sigaction(SIGALRM, &sa, &old);	/* no SA_RESTART */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	alarm(secs);
	ret = sodp_write_line(path, state);
	alarm(0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	sigaction(SIGALRM, &old, NULL);
	if (ms)
		*ms = (t1.tv_sec - t0.tv_sec) * 1000 +
		      (t1.tv_nsec - t0.tv_nsec) / 1000000;
	return ret;
}

/* The memory block of each page of @buf (-1: not present); 0 or -errno. */
static int page_blocks(uint8_t *buf, size_t npages, uint64_t block_bytes,
		       long *blk)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	size_t i;

	if (fd < 0)
		return -errno;
	for (i = 0; i < npages; i++) {
		uint64_t e, vpn = ((uintptr_t)buf + i * PAGE_SZ) / PAGE_SZ;

		if (pread(fd, &e, sizeof(e), vpn * sizeof(e)) != sizeof(e)) {
			close(fd);
			return -EIO;
		}
		blk[i] = (e >> 63) && (e & ((1ULL << 55) - 1)) ?
			 (long)((e & ((1ULL << 55) - 1)) * PAGE_SZ /
				block_bytes) : -1;
	}
	close(fd);
	return 0;
}

/* How many of @npages entries of @blk are @want (or movable, for -1). */
static size_t count_in(const long *blk, size_t npages, long want)
{
	size_t i, n = 0;

	for (i = 0; i < npages; i++)
		if (want >= 0 ? blk[i] == want :
				blk[i] >= 0 && block_movable(blk[i]))
			n++;
	return n;
}

/* The block holding most of the @npages pages, among movable ones if asked. */
static long busiest_block(const long *blk, size_t npages, bool movable)
{
	size_t i, best_n = 0;
	long best = -1;

	for (i = 0; i < npages; i++) {
		size_t n;

		if (blk[i] < 0 || blk[i] == best ||
		    (movable && !block_movable(blk[i])))
			continue;
		n = count_in(blk, npages, blk[i]);
		if (n > best_n) {
			best_n = n;
			best = blk[i];
		}
	}
	return best;
}

/* The lowest memory block that is offline (hot-pluggable memory), or -1. */
static long offline_block(void)
{
	DIR *d = opendir(MEMDIR);
	char state[64], zones[64];
	struct dirent *e;
	long best = -1, blk;
	char *end;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "memory", 6))
			continue;
		blk = strtol(e->d_name + 6, &end, 10);
		if (*end || end == e->d_name + 6 ||
		    block_get(blk, state, zones, sizeof(state)) ||
		    strcmp(state, "offline"))
			continue;
		if (best < 0 || blk < best)
			best = blk;
	}
	closedir(d);
	return best;
}

FIXTURE_SETUP(memhp)
{
	const char *name = getenv("SODP_DEVICE");
	char val[64];
	long blk;

	self->onlined = -1;
	self->offlined = -1;
	if (!name || !*name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	ASSERT_EQ(0, sodp_dev_open(&self->dev, name));
	if ((variant->access & IBV_ACCESS_ON_DEMAND) &&
	    (!(self->dev.odp.general_caps & IBV_ODP_SUPPORT) ||
	     (self->dev.odp.per_transport_caps.rc_odp_caps &
	      (IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ)) !=
	     (IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ)))
		SKIP(return, "%s has no RC ODP WRITE and READ", name);
	if (variant->pin_mode && sodp_pin_mode() == SODP_PIN_ABSENT)
		SKIP(return, "no sodp.pin_mode (stock drivers)");
	if (sodp_read_line(MEMDIR "/block_size_bytes", val, sizeof(val)))
		SKIP(return, "no memory hotplug sysfs (%s)", MEMDIR);
	self->block_bytes = strtoull(val, NULL, 16);
	ASSERT_NE(0ULL, (unsigned long long)self->block_bytes);
	self->seed = sodp_seed(_metadata->name);
	blk = offline_block();
	if (blk < 0)
		SKIP(return, "no offline memory block (hot-pluggable DIMM)");
	ASSERT_EQ(0, block_set(blk, "online_movable", 60, NULL))
		TH_LOG("memory%ld: online_movable refused", blk);
	self->onlined = blk;
	if (variant->pin_mode) {
		snprintf(self->pin_saved, sizeof(self->pin_saved), "%s",
			 sodp_pin_mode_str(sodp_pin_mode()));
		ASSERT_EQ(0, sodp_pin_mode_write(variant->pin_mode));
	}
	self->buf = sodp_map_anon(BUF_PAGES * PAGE_SZ);
	ASSERT_NE(NULL, self->buf);
	ASSERT_EQ(0, madvise(self->buf, BUF_PAGES * PAGE_SZ,
			     MADV_NOHUGEPAGE));
	memset(self->buf, 0, BUF_PAGES * PAGE_SZ);
	sodp_pattern_fill(self->buf, STATIC_PAGES * PAGE_SZ, self->seed, 0);
}

FIXTURE_TEARDOWN(memhp)
{
	if (self->s.running) {
		__atomic_store_n(&self->s.stop, 1, __ATOMIC_RELEASE);
		pthread_join(self->s.thread, NULL);
	}
	sodp_pair_destroy(&self->pair);
	sodp_mr_dereg(&self->mr);
	if (self->buf)
		sodp_unmap(self->buf, BUF_PAGES * PAGE_SZ);
	if (self->offlined >= 0 &&
	    block_set(self->offlined, "online", 60, NULL))
		TH_LOG("memory%ld stays offline", self->offlined);
	if (self->onlined >= 0 && block_movable(self->onlined) &&
	    block_set(self->onlined, "offline", 60, NULL))
		TH_LOG("memory%ld stays online", self->onlined);
	if (self->pin_saved[0])
		sodp_pin_mode_write(self->pin_saved);
	sodp_dev_close(&self->dev);
}

/* Start the stream over the MR's tgt/src/dst and let it do a few rounds. */
static void stream_start(struct __test_metadata *_metadata,
			 FIXTURE_DATA(memhp) *self)
{
	struct sodp_stream *s = &self->s;
	uint8_t *sbuf = self->buf + 2 * STATIC_PAGES * PAGE_SZ;
	uint64_t end = time(NULL) + OFFLINE_SECS;

	s->pair = &self->pair;
	s->timeout_ms = self->dev.timeout_ms;
	s->mr = self->mr;
	s->len = STREAM_PAGES * PAGE_SZ;
	s->tgt = sbuf;
	s->src = sbuf + s->len;
	s->dst = sbuf + 2 * s->len;
	s->seed = self->seed + (1ULL << 32);
	ASSERT_EQ(0, pthread_create(&s->thread, NULL, sodp_stream_main, s));
	s->running = true;
	while (sodp_stream_iters(s) < STREAM_ITERS && !s->err &&
	       (uint64_t)time(NULL) < end)
		usleep(10000);
	ASSERT_EQ(0, s->err) TH_LOG("%s", s->why);
	ASSERT_LE(STREAM_ITERS, sodp_stream_iters(s));
}

/* Stop the stream after a few more rounds; it must not have failed. */
static void stream_finish(struct __test_metadata *_metadata,
			  FIXTURE_DATA(memhp) *self)
{
	struct sodp_stream *s = &self->s;
	uint64_t want = sodp_stream_iters(s) + STREAM_ITERS;
	uint64_t end = time(NULL) + OFFLINE_SECS;

	while (sodp_stream_iters(s) < want && !s->err &&
	       (uint64_t)time(NULL) < end)
		usleep(10000);
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	pthread_join(s->thread, NULL);
	s->running = false;
	ASSERT_EQ(0, s->err) TH_LOG("%s", s->why);
	ASSERT_LE(want, sodp_stream_iters(s));
}

/* RDMA READ the static part into the readback part; check both views. */
static void check_static(struct __test_metadata *_metadata,
			 FIXTURE_DATA(memhp) *self)
{
	size_t len = STATIC_PAGES * PAGE_SZ;
	uint8_t *back = self->buf + len;
	struct ibv_wc wc;
	ssize_t off;

	memset(back, 0, len);
	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_READ, 1, back,
				    len, self->mr->lkey,
				    (uintptr_t)self->buf, self->mr->rkey, 0));
	ASSERT_EQ(0, sodp_poll_one(self->pair.cli.scq, &wc,
				   self->dev.timeout_ms));
	ASSERT_EQ((int)IBV_WC_SUCCESS, (int)wc.status)
		TH_LOG("READ: %s", ibv_wc_status_str(wc.status));
	off = sodp_pattern_check(back, len, self->seed, 0);
	EXPECT_EQ(-1, off) TH_LOG("READ of the static part: byte %zd", off);
	off = sodp_pattern_check(self->buf, len, self->seed, 0);
	EXPECT_EQ(-1, off) TH_LOG("CPU view of the static part: byte %zd", off);
}

/*
 * Register, stream, offline the block the MR's pages were in: see the
 * comment at the top for what each variant must show.
 */
TEST_F_TIMEOUT(memhp, offline_under_traffic, CASE_TIMEOUT)
{
	long blk[BUF_PAGES], target, home;
	struct sodp_mr_stats st0, st1;
	char state[64], zones[64];
	uint64_t ms;
	size_t n;
	int ret;

	ASSERT_EQ(0, page_blocks(self->buf, BUF_PAGES, self->block_bytes, blk));
	target = busiest_block(blk, BUF_PAGES, true);
	n = count_in(blk, BUF_PAGES, target);
	TH_LOG("%zu of %d pages in movable memory%ld", n, BUF_PAGES, target);
	ASSERT_EQ(self->onlined, target);

	self->mr = sodp_mr_reg(&self->dev, self->buf, BUF_PAGES * PAGE_SZ,
			       variant->access);
	ASSERT_NE(NULL, self->mr) TH_LOG("reg_mr: %s", strerror(errno));
	ASSERT_EQ(0, sodp_pair_connect(&self->dev, &self->pair));
	ASSERT_EQ(0, page_blocks(self->buf, BUF_PAGES, self->block_bytes, blk));

	if (variant->pinned) {
		/* FOLL_LONGTERM moved them out of ZONE_MOVABLE first. */
		EXPECT_EQ(0UL, count_in(blk, BUF_PAGES, -1));
		home = busiest_block(blk, BUF_PAGES, false);
		ASSERT_LE(0, home);
		ASSERT_EQ(0, block_get(home, state, zones, sizeof(state)));
		TH_LOG("pinned in memory%ld (%s)", home, zones);
		stream_start(_metadata, self);
		ret = block_set(home, "offline", PINNED_SECS, &ms);
		if (!ret)
			self->offlined = home;
		TH_LOG("offline of memory%ld with a pinned MR: %s after %llu ms",
		       home, ret ? strerror(-ret) : "done",
		       (unsigned long long)ms);
		EXPECT_TRUE(ret == -EBUSY || ret == -EINTR);
		ASSERT_EQ(0, block_get(home, state, zones, sizeof(state)));
		EXPECT_STREQ("online", state);
		stream_finish(_metadata, self);
		check_static(_metadata, self);
		return;
	}

	/* No pin: registration moved nothing. */
	EXPECT_EQ(n, count_in(blk, BUF_PAGES, target));
	ASSERT_EQ(0, sodp_mr_stats_get(self->dev.name, self->mr->lkey, &st0));
	stream_start(_metadata, self);
	ret = block_set(target, "offline", OFFLINE_SECS, &ms);
	ASSERT_EQ(0, ret) TH_LOG("offline of memory%ld: %s after %llu ms",
				 target, strerror(-ret),
				 (unsigned long long)ms);
	TH_LOG("timing: memory%ld offline in %llu ms with the MR streaming",
	       target, (unsigned long long)ms);
	stream_finish(_metadata, self);
	check_static(_metadata, self);

	ASSERT_EQ(0, page_blocks(self->buf, BUF_PAGES, self->block_bytes, blk));
	EXPECT_EQ(0UL, count_in(blk, BUF_PAGES, target));
	ASSERT_EQ(0, sodp_mr_stats_get(self->dev.name, self->mr->lkey, &st1));
	EXPECT_LT(st0.pages_invalidated, st1.pages_invalidated);
	TH_LOG("pages_invalidated %llu -> %llu",
	       (unsigned long long)st0.pages_invalidated,
	       (unsigned long long)st1.pages_invalidated);
}

TEST_HARNESS_MAIN
