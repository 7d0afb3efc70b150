// SPDX-License-Identifier: GPL-2.0
/*
 * sodp_demo: what sodp lets rxe and siw do, for `make demo`.
 *
 * On one device (SODP_DEVICE), with sodp's pin_mode=auto, over a
 * MAP_SHARED file on FS-DAX (SODP_DAX_DIR):
 *   - an ODP MR and a plain MR (served by sodp: stock pinning refuses
 *     FS-DAX) over the whole file,
 *   - an ODP MR over anonymous memory.
 * For SECS seconds one QP pair RDMA WRITEs into the first half of the file
 * (alternately through the ODP and the plain MR) and a second pair into
 * the anonymous MR, each round read back by RDMA READ and compared byte
 * for byte. Meanwhile the main thread shrinks the file into its second
 * half and regrows it, punches holes in the second half and moves the
 * anonymous MR's pages between NUMA nodes 0 and 1 (numa=fake=2).
 * Prints bytes written and verified, mismatches, the latency of every
 * kind of file and mm operation, pages migrated, and sodp's counters.
 *
 * With --stock (stock rdma_rxe/siw, no sodp) it only checks that
 * registering an ODP MR and a plain MR on the FS-DAX file both fail with
 * EOPNOTSUPP, and that a plain anonymous MR still works.
 *
 * Every result line worth a summary starts with "summary: ".
 * Usage: sodp_demo [--stock] [SECS]; exit status 0 if all went as expected.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sodp_lib.h"

#define FILE_LEN	(8ul << 20)	/* the FS-DAX file */
#define ANON_LEN	(4ul << 20)	/* the anonymous ODP MR */
#define REGION		(FILE_LEN / 4)	/* one MR's share of the first half */
#define CHUNK		(32u << 10)
#define WINDOW		16
#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX	0x00200000
#endif

#define ODP_RW		(SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND)

static atomic_int stop;

/* One writer: a QP pair streaming into one or two target MRs. */
struct stream {
	const char *what;
	struct sodp_pair pair;
	char *src, *back;		/* local buffers, pinned */
	struct ibv_mr *src_mr, *back_mr;
	char *target[2];		/* alternated per round */
	struct ibv_mr *target_mr[2];
	size_t len;			/* bytes per round */
	unsigned int seed;
	uint64_t written, verified, mismatches, rounds;
	int failed;
};

/* Latency of one kind of operation. */
struct op_stat {
	const char *name;
	long n;
	double sum_ms, max_ms;
	int failed;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void op_done(struct op_stat *op, double t0, int ret)
{
	double ms = now_ms() - t0;

	if (ret) {
		if (!op->failed)
			fprintf(stderr, "# %s: %s\n", op->name,
				strerror(errno));
		op->failed = 1;
		return;
	}
	op->n++;
	op->sum_ms += ms;
	if (ms > op->max_ms)
		op->max_ms = ms;
}

/* Post @op for @len bytes in CHUNK pieces, WINDOW outstanding; 0 or -1. */
static int transfer(struct stream *s, enum ibv_wr_opcode op, char *lbuf,
		    uint32_t lkey, char *rbuf, uint32_t rkey, size_t len)
{
	size_t posted = 0, done = 0, off = 0, n;
	struct ibv_wc wc;

	while (off < len || done < posted) {
		while (off < len && posted - done < WINDOW) {
			n = len - off < CHUNK ? len - off : CHUNK;
			if (sodp_post_rdma(&s->pair.cli, op, posted, lbuf + off,
					   n, lkey, (uintptr_t)rbuf + off,
					   rkey, 0))
				return -1;
			off += n;
			posted++;
		}
		if (sodp_poll_one(s->pair.cli.scq, &wc, 60000))
			return -1;
		if (wc.status != IBV_WC_SUCCESS) {
			fprintf(stderr, "# %s: %s wc status %s\n", s->what,
				op == IBV_WR_RDMA_WRITE ? "WRITE" : "READ",
				ibv_wc_status_str(wc.status));
			return -1;
		}
		done++;
	}
	return 0;
}

/* Bytes of @buf that differ from the pattern (@seed, 0). */
static uint64_t count_bad(const char *buf, size_t len, uint64_t seed)
{
	uint64_t bad = 0;
	size_t i;

	if (sodp_pattern_check(buf, len, seed, 0) < 0)
		return 0;
	for (i = 0; i < len; i++)
		bad += (uint8_t)buf[i] != sodp_pattern_byte(seed, i);
	return bad;
}

static void *streamer(void *arg)
{
	struct stream *s = arg;
	uint64_t seed;
	int t;

	while (!stop) {
		t = s->rounds % 2;
		if (!s->target[t])
			t = 0;
		seed = ((uint64_t)s->seed << 32) | s->rounds;
		sodp_pattern_fill(s->src, s->len, seed, 0);
		memset(s->back, 0, s->len);
		if (transfer(s, IBV_WR_RDMA_WRITE, s->src, s->src_mr->lkey,
			     s->target[t], s->target_mr[t]->rkey, s->len) ||
		    transfer(s, IBV_WR_RDMA_READ, s->back, s->back_mr->lkey,
			     s->target[t], s->target_mr[t]->rkey, s->len)) {
			s->failed = 1;
			break;
		}
		s->written += s->len;
		/* What READ brought back, and what the CPU sees. */
		s->mismatches += count_bad(s->back, s->len, seed);
		s->mismatches += count_bad(s->target[t], s->len, seed);
		s->verified += s->len;
		s->rounds++;
	}
	return NULL;
}

static int stream_init(struct stream *s, struct sodp_dev *dev,
		       const char *what, size_t len, unsigned int seed)
{
	s->what = what;
	s->len = len;
	s->seed = seed;
	if (sodp_pair_connect(dev, &s->pair))
		return -1;
	s->src = sodp_map_anon(len);
	s->back = sodp_map_anon(len);
	if (!s->src || !s->back)
		return -1;
	s->src_mr = sodp_mr_reg(dev, s->src, len, IBV_ACCESS_LOCAL_WRITE);
	s->back_mr = sodp_mr_reg(dev, s->back, len, IBV_ACCESS_LOCAL_WRITE);
	if (!s->src_mr || !s->back_mr) {
		fprintf(stderr, "# %s: local MR: %s\n", what, strerror(errno));
		return -1;
	}
	return 0;
}

static void stream_fini(struct stream *s)
{
	sodp_mr_dereg(&s->src_mr);
	sodp_mr_dereg(&s->back_mr);
	sodp_pair_destroy(&s->pair);
}

/* A MAP_SHARED mapping of a new, unlinked FILE_LEN file on FS-DAX. */
static char *dax_map(int *fdp)
{
	const char *dir = getenv("SODP_DAX_DIR");
	struct statx stx;
	char path[4096];
	char *map;
	int fd;

	if (!dir || !*dir) {
		fprintf(stderr, "# SODP_DAX_DIR is not set (vm-run --pmem)\n");
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/sodp_demo.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0 || unlink(path) || ftruncate(fd, FILE_LEN) ||
	    statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx)) {
		fprintf(stderr, "# %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (!(stx.stx_attributes & STATX_ATTR_DAX)) {
		fprintf(stderr, "# %s is not FS-DAX\n", dir);
		return NULL;
	}
	map = mmap(NULL, FILE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "# mmap: %s\n", strerror(errno));
		return NULL;
	}
	*fdp = fd;
	return map;
}

/* Register, expecting failure with @want; 0 if it failed so. */
static int expect_refused(struct sodp_dev *dev, const char *what, void *addr,
			  size_t len, int access, int want)
{
	struct ibv_mr *mr = sodp_mr_reg(dev, addr, len, access);
	int err = errno;

	if (mr) {
		printf("summary: %s stock: %s -> registered (unexpected)\n",
		       dev->name, what);
		sodp_mr_dereg(&mr);
		return -1;
	}
	printf("summary: %s stock: %s -> %s (errno %d)%s\n", dev->name, what,
	       err == EOPNOTSUPP ? "EOPNOTSUPP" : strerror(err), err,
	       err == want ? "" : " (unexpected)");
	return err == want ? 0 : -1;
}

static int run_stock(struct sodp_dev *dev)
{
	char *anon = sodp_map_anon(ANON_LEN), *map;
	struct ibv_mr *mr;
	int fd, bad = 0;

	if (sodp_pin_mode() != SODP_PIN_ABSENT) {
		fprintf(stderr, "# sodp is loaded: not the stock drivers\n");
		return 1;
	}
	map = dax_map(&fd);
	if (!anon || !map)
		return 1;
	bad |= expect_refused(dev, "ODP MR (anonymous)", anon, ANON_LEN,
			      ODP_RW, EOPNOTSUPP);
	bad |= expect_refused(dev, "plain MR on FS-DAX file", map, FILE_LEN,
			      SODP_ACCESS_RW, EOPNOTSUPP);
	mr = sodp_mr_reg(dev, anon, ANON_LEN, SODP_ACCESS_RW);
	printf("summary: %s stock: plain MR (anonymous) -> %s\n", dev->name,
	       mr ? "ok" : strerror(errno));
	bad |= !mr;
	sodp_mr_dereg(&mr);
	munmap(map, FILE_LEN);
	close(fd);
	return !!bad;
}

static const char * const totals[] = {
	"faults", "pages_faulted", "invalidations", "pages_invalidated",
	"cache_hits", "cache_misses", "recalls", "deferrals",
};

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#endif
#define NTOTALS	ARRAY_SIZE(totals)

static int read_totals(int64_t *v)
{
	unsigned int i;

	for (i = 0; i < NTOTALS; i++)
		if (sodp_debugfs_get(totals[i], &v[i]))
			return -1;
	return 0;
}

static void print_mr(const char *dev, const char *what, struct ibv_mr *mr)
{
	struct sodp_mr_stats st;

	if (sodp_mr_stats_get(dev, mr->lkey, &st)) {
		printf("  %-22s counters unavailable\n", what);
		return;
	}
	printf("  %-22s faults %llu (%llu pages), invalidations %llu (%llu pages), mirrored %llu\n",
	       what, (unsigned long long)st.page_faults,
	       (unsigned long long)st.pages_faulted,
	       (unsigned long long)st.page_invalidations,
	       (unsigned long long)st.pages_invalidated,
	       (unsigned long long)st.pages_mirrored);
}

/* move_pages() all of @anon to @node; pages now there, or -1. */
static long migrate(char *anon, int node)
{
	static void *pages[ANON_LEN / 4096];
	static int nodes[ANON_LEN / 4096], status[ANON_LEN / 4096];
	long pg = sodp_page_size(), n = ANON_LEN / pg, i, moved = 0;

	for (i = 0; i < n; i++)
		pages[i] = anon + i * pg;
	if (sodp_move_pages_to(pages, n, nodes, status, node) < 0)
		return -1;
	for (i = 0; i < n; i++)
		moved += status[i] == node;
	return moved;
}

static int run_ours(struct sodp_dev *dev, int secs)
{
	struct op_stat ops[] = {
		{ .name = "truncate shrink" }, { .name = "truncate regrow" },
		{ .name = "punch hole" }, { .name = "move_pages" },
	};
	struct ibv_mr *odp_mr, *plain_mr, *anon_mr;
	int64_t before[NTOTALS], after[NTOTALS];
	static struct stream fs, as;
	pthread_t fs_th, as_th;
	long moved = 0, m;
	unsigned int i, k;
	double t0, end;
	char *map, *anon;
	int fd, bad = 0;

	if (sodp_pin_mode() != SODP_PIN_AUTO) {
		fprintf(stderr, "# sodp pin_mode is %s, not auto\n",
			sodp_pin_mode_str(sodp_pin_mode()));
		return 1;
	}
	map = dax_map(&fd);
	anon = sodp_map_anon(ANON_LEN);
	if (!map || !anon)
		return 1;
	odp_mr = sodp_mr_reg(dev, map, FILE_LEN, ODP_RW);
	if (!odp_mr) {
		fprintf(stderr, "# ODP MR on FS-DAX: %s\n", strerror(errno));
		return 1;
	}
	plain_mr = sodp_mr_reg(dev, map, FILE_LEN, SODP_ACCESS_RW);
	if (!plain_mr) {
		fprintf(stderr, "# plain MR on FS-DAX: %s\n", strerror(errno));
		return 1;
	}
	anon_mr = sodp_mr_reg(dev, anon, ANON_LEN, ODP_RW);
	if (!anon_mr) {
		fprintf(stderr, "# ODP MR (anon): %s\n", strerror(errno));
		return 1;
	}
	printf("%s: registered ODP + plain MR on a %lu MiB FS-DAX file,",
	       dev->name, FILE_LEN >> 20);
	printf(" ODP MR on %lu MiB anonymous memory\n", ANON_LEN >> 20);

	if (stream_init(&fs, dev, "file", REGION, 1) ||
	    stream_init(&as, dev, "anon", ANON_LEN, 2))
		return 1;
	fs.target[0] = map;
	fs.target_mr[0] = odp_mr;
	fs.target[1] = map + REGION;
	fs.target_mr[1] = plain_mr;
	as.target[0] = anon;
	as.target_mr[0] = anon_mr;

	if (read_totals(before))
		return 1;
	pthread_create(&fs_th, NULL, streamer, &fs);
	pthread_create(&as_th, NULL, streamer, &as);

	/*
	 * The file and mm operations, each timed: shrink the file into its
	 * second half and regrow it, punch a hole in the second half, move
	 * the anonymous pages to the other node.
	 */
	end = now_ms() + secs * 1e3;
	for (k = 0; now_ms() < end && !fs.failed && !as.failed; k++) {
		t0 = now_ms();
		op_done(&ops[0], t0, ftruncate(fd, FILE_LEN / 2 +
					       (k % 4 + 1) * FILE_LEN / 10));
		t0 = now_ms();
		op_done(&ops[1], t0, ftruncate(fd, FILE_LEN));
		t0 = now_ms();
		op_done(&ops[2], t0, fallocate(fd, FALLOC_FL_PUNCH_HOLE |
					       FALLOC_FL_KEEP_SIZE,
					       FILE_LEN / 2 +
					       (k % 8) * FILE_LEN / 16,
					       FILE_LEN / 16));
		t0 = now_ms();
		m = migrate(anon, (k + 1) % 2);
		op_done(&ops[3], t0, m < 0);
		if (m > 0)
			moved += m;
		usleep(20000);
	}
	stop = 1;
	pthread_join(fs_th, NULL);
	pthread_join(as_th, NULL);
	if (read_totals(after))
		bad = 1;

	printf("%s: streams:\n", dev->name);
	for (i = 0; i < 2; i++) {
		struct stream *s = i ? &as : &fs;

		printf("  %-4s %llu rounds, %llu bytes written,", s->what,
		       (unsigned long long)s->rounds,
		       (unsigned long long)s->written);
		printf(" %llu verified by READ-back and CPU, %llu mismatches%s\n",
		       (unsigned long long)s->verified,
		       (unsigned long long)s->mismatches,
		       s->failed ? ", STREAM FAILED" : "");
		bad |= s->failed || s->mismatches || !s->rounds;
	}
	printf("%s: operations during the streams (ms):\n", dev->name);
	for (i = 0; i < 4; i++) {
		printf("  %-16s %4ld x, avg %7.2f, max %7.2f%s\n", ops[i].name,
		       ops[i].n, ops[i].n ? ops[i].sum_ms / ops[i].n : 0,
		       ops[i].max_ms, ops[i].failed ? ", FAILED" : "");
		bad |= ops[i].failed || !ops[i].n;
	}
	printf("  pages migrated   %ld (%lu per move)\n", moved,
	       ANON_LEN / sodp_page_size());
	bad |= !moved;
	printf("%s: sodp totals (debugfs) before -> after:\n ", dev->name);
	for (i = 0; i < NTOTALS; i++)
		printf(" %s %lld->%lld", totals[i], (long long)before[i],
		       (long long)after[i]);
	printf("\n%s: per-MR counters (rdma statistic show mr):\n",
	       dev->name);
	print_mr(dev->name, "ODP MR, FS-DAX file", odp_mr);
	print_mr(dev->name, "plain MR, FS-DAX file", plain_mr);
	print_mr(dev->name, "ODP MR, anonymous", anon_mr);

	printf("summary: %s sodp: WRITE+READ-back %llu MiB into FS-DAX (ODP+plain MR)",
	       dev->name, (unsigned long long)(fs.verified >> 20));
	printf(" and %llu MiB into anon ODP, %llu mismatches\n",
	       (unsigned long long)(as.verified >> 20),
	       (unsigned long long)(fs.mismatches + as.mismatches));
	printf("summary: %s sodp: during it %ld truncates (avg %.1f ms),",
	       dev->name, ops[0].n + ops[1].n,
	       ops[0].n + ops[1].n ?
	       (ops[0].sum_ms + ops[1].sum_ms) / (ops[0].n + ops[1].n) : 0);
	printf(" %ld punches (avg %.1f ms), %ld pages migrated (%ld moves, avg %.1f ms)\n",
	       ops[2].n, ops[2].n ? ops[2].sum_ms / ops[2].n : 0, moved,
	       ops[3].n, ops[3].n ? ops[3].sum_ms / ops[3].n : 0);
	printf("summary: %s sodp: faults +%lld (%lld pages),",
	       dev->name, (long long)(after[0] - before[0]),
	       (long long)(after[1] - before[1]));
	printf(" invalidations +%lld (%lld pages): %s\n",
	       (long long)(after[2] - before[2]),
	       (long long)(after[3] - before[3]), bad ? "FAILED" : "ok");

	stream_fini(&fs);
	stream_fini(&as);
	sodp_mr_dereg(&anon_mr);
	sodp_mr_dereg(&plain_mr);
	sodp_mr_dereg(&odp_mr);
	munmap(map, FILE_LEN);
	close(fd);
	return bad;
}

int main(int argc, char **argv)
{
	const char *name = getenv("SODP_DEVICE");
	int stock = argc > 1 && !strcmp(argv[1], "--stock");
	int secs = argc > 1 + stock ? atoi(argv[1 + stock]) : 8;
	struct sodp_dev dev;
	int ret;

	if (!name) {
		fprintf(stderr, "usage: SODP_DEVICE=dev %s [--stock] [secs]\n",
			argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (sodp_dev_open(&dev, name))
		return 1;
	ret = stock ? run_stock(&dev) : run_ours(&dev, secs);
	sodp_dev_close(&dev);
	return ret;
}
