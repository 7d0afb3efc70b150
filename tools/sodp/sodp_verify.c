// SPDX-License-Identifier: GPL-2.0
/*
 * sodp_verify: the data check of one benchmark row. perftest never looks
 * at the bytes it moves, so for every (operation, size, MR mode) that
 * scripts/guest-bench.sh measures, this runs the same operation once over
 * a pattern and compares every byte of the destination buffer: the target
 * range must hold the source's pattern and every other byte of the buffer
 * its own, different, background pattern (so data that lands in the wrong
 * place counts as well as data that never arrives).
 *
 * The destination is the remote (responder's) buffer for WRITE and SEND,
 * the local buffer for READ. Both buffers are fresh anonymous memory,
 * filled by the CPU and then registered: with MODE odp as ODP MRs
 * (IBV_ACCESS_ON_DEMAND), with MODE plain as plain MRs, which the kernel
 * pins or, under sodp.pin_mode=all, mirrors (the caller sets pin_mode).
 * It needs nothing from sodp: it runs on a stock kernel's rxe too.
 *
 * "subpage" instead of a size runs small accesses (8 .. 512 bytes) at odd
 * offsets within a page and across page boundaries, each in a page of its
 * own, checking the whole buffer after each. A comma-separated list runs
 * each in turn, on fresh buffers and MRs, over one connection.
 *
 * Prints one line per access
 *   verify OP MODE SIZE OFFSET bad=N
 * (N bytes of the destination buffer wrong) and one per list element
 *   verified OP MODE SIZE accesses=A bad=N
 * or, if it could not run,
 *   verified OP MODE SIZE error
 * Exit status 0 if every byte was right, 1 if any was wrong, 2 on an error.
 *
 * Usage: SODP_DEVICE=dev sodp_verify write|read|send odp|plain SIZE|subpage[,...]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sodp_lib.h"

#define SEED_SRC	0x736f6470aa55aa55ull
#define SEED_DST	0x0ddba11c0ffee000ull
#define NSUBPAGE	ARRAY_SIZE(subpage)
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

struct access {
	size_t size;
	size_t offset;
};

struct bufs {
	char *src, *dst;
	size_t len;
	struct ibv_mr *smr, *dmr;
};

static long page;

/* Bytes of @buf that differ from what an access of @a leaves there. */
static size_t count_bad(const char *buf, size_t len, const struct access *a)
{
	size_t i, bad = 0;

	for (i = 0; i < len; i++) {
		int in = i >= a->offset && i < a->offset + a->size;
		uint8_t want = in ? sodp_pattern_byte(SEED_SRC, i) :
				    sodp_pattern_byte(SEED_DST, i);

		if ((uint8_t)buf[i] != want)
			bad++;
	}
	return bad;
}

/* Print the first wrong bytes, so that a report shows what landed where. */
static void show_bad(const char *buf, size_t len, const struct access *a)
{
	size_t i, shown = 0;

	for (i = 0; i < len && shown < 8; i++) {
		int in = i >= a->offset && i < a->offset + a->size;
		uint8_t want = in ? sodp_pattern_byte(SEED_SRC, i) :
				    sodp_pattern_byte(SEED_DST, i);

		if ((uint8_t)buf[i] == want)
			continue;
		printf("#   byte %zu (%s target): 0x%02x, want 0x%02x\n", i,
		       in ? "in" : "outside", (uint8_t)buf[i], want);
		shown++;
	}
}

static int do_access(struct sodp_pair *pair, const char *op,
		     struct bufs *b, const struct access *a)
{
	char *src = b->src + a->offset, *dst = b->dst + a->offset;
	struct ibv_wc wc;
	int ret;

	if (!strcmp(op, "write")) {
		ret = sodp_post_rdma(&pair->cli, IBV_WR_RDMA_WRITE, 1, src,
				     a->size, b->smr->lkey, (uintptr_t)dst,
				     b->dmr->rkey, 0);
	} else if (!strcmp(op, "read")) {
		/* READ: the remote buffer is the source, the local one the
		 * destination.
		 */
		ret = sodp_post_rdma(&pair->cli, IBV_WR_RDMA_READ, 1, dst,
				     a->size, b->dmr->lkey, (uintptr_t)src,
				     b->smr->rkey, 0);
	} else {
		ret = sodp_post_recv(&pair->srv, 2, dst, a->size,
				     b->dmr->lkey);
		if (!ret)
			ret = sodp_post_send(&pair->cli, 1, src, a->size,
					     b->smr->lkey);
	}
	if (ret)
		return ret;
	ret = sodp_poll_one(pair->cli.scq, &wc, pair->dev->timeout_ms);
	if (ret)
		return ret;
	if (wc.status != IBV_WC_SUCCESS) {
		printf("# %s: completion %s\n", op, ibv_wc_status_str(wc.status));
		return -EIO;
	}
	/*
	 * A WRITE completion does not mean the data was placed (siw
	 * completes it once TCP has it): wait for a SEND received after it.
	 */
	if (!strcmp(op, "write"))
		return sodp_pair_sync(pair);
	if (strcmp(op, "send"))
		return 0;
	ret = sodp_poll_one(pair->srv.rcq, &wc, pair->dev->timeout_ms);
	if (ret)
		return ret;
	if (wc.status != IBV_WC_SUCCESS || wc.byte_len != a->size) {
		printf("# send: receive %s, %u bytes\n",
		       ibv_wc_status_str(wc.status), wc.byte_len);
		return -EIO;
	}
	return 0;
}

static int bufs_init(struct sodp_dev *dev, struct bufs *b, size_t len,
		     int access)
{
	b->len = len;
	b->src = sodp_map_anon(len);
	b->dst = sodp_map_anon(len);
	if (!b->src || !b->dst)
		return -ENOMEM;
	sodp_pattern_fill(b->src, len, SEED_SRC, 0);
	sodp_pattern_fill(b->dst, len, SEED_DST, 0);
	b->smr = sodp_mr_reg(dev, b->src, len, access);
	if (!b->smr) {
		printf("# ibv_reg_mr(%zu): %s\n", len, strerror(errno));
		return -errno;
	}
	b->dmr = sodp_mr_reg(dev, b->dst, len, access);
	if (!b->dmr) {
		printf("# ibv_reg_mr(%zu): %s\n", len, strerror(errno));
		return -errno;
	}
	return 0;
}

static void bufs_fini(struct bufs *b)
{
	sodp_mr_dereg(&b->dmr);
	sodp_mr_dereg(&b->smr);
	sodp_unmap(b->src, b->len);
	sodp_unmap(b->dst, b->len);
}

/* The sub-page accesses: size and offset within the page of their own. */
static const struct access subpage[] = {
	{ 8, 1 }, { 8, 4093 }, { 16, 7 }, { 24, 2049 }, { 64, 513 },
	{ 64, 4090 }, { 100, 3 }, { 200, 4001 }, { 256, 1023 },
	{ 512, 77 }, { 512, 3841 }, { 511, 2047 },
};

/*
 * One element of the list: fresh buffers and MRs, the accesses, the
 * summary line. Returns the wrong bytes, or < 0 if it could not run.
 */
static long run_one(struct sodp_dev *dev, struct sodp_pair *pair,
		    const char *op, const char *mode, const char *what,
		    int access)
{
	struct access acc[NSUBPAGE];
	size_t i, n, len, bad, total = 0, size;
	struct bufs b = {};
	long ret = -1;

	if (!strcmp(what, "subpage")) {
		n = NSUBPAGE;
		/* Access i in page i + 1; page 0 and the last stay untouched. */
		for (i = 0; i < n; i++) {
			acc[i] = subpage[i];
			acc[i].offset += (i + 1) * page;
		}
		len = (n + 2) * page;
	} else {
		size = strtoul(what, NULL, 0);
		if (!size)
			goto out;
		n = 1;
		acc[0].size = size;
		acc[0].offset = 0;
		/* One page beyond the target catches writes past its end. */
		len = (size + 2 * page - 1) / page * page;
	}
	if (bufs_init(dev, &b, len, access))
		goto out;
	for (i = 0; i < n; i++) {
		if (do_access(pair, op, &b, &acc[i]))
			goto out;
		bad = count_bad(b.dst, len, &acc[i]);
		printf("verify %s %s %zu %zu bad=%zu\n", op, mode, acc[i].size,
		       acc[i].offset % page, bad);
		if (bad)
			show_bad(b.dst, len, &acc[i]);
		total += bad;
		/* Back to the background, so the next access starts clean. */
		sodp_pattern_fill(b.dst + acc[i].offset, acc[i].size, SEED_DST,
				  acc[i].offset);
		if (bad)
			sodp_pattern_fill(b.dst, len, SEED_DST, 0);
	}
	ret = total;
out:
	if (ret < 0)
		printf("verified %s %s %s error\n", op, mode, what);
	else
		printf("verified %s %s %s accesses=%zu bad=%zu\n", op, mode,
		       what, n, total);
	bufs_fini(&b);
	return ret;
}

int main(int argc, char **argv)
{
	const char *name = getenv("SODP_DEVICE");
	char *list, *what, *save;
	struct sodp_pair pair;
	struct sodp_dev dev;
	int access, ret = 0;
	long bad;

	if (argc != 4 || !name ||
	    (strcmp(argv[1], "write") && strcmp(argv[1], "read") &&
	     strcmp(argv[1], "send")) ||
	    (strcmp(argv[2], "odp") && strcmp(argv[2], "plain"))) {
		fprintf(stderr, "usage: SODP_DEVICE=dev %s %s\n", argv[0],
			"write|read|send odp|plain SIZE|subpage[,...]");
		return 2;
	}
	page = sodp_page_size();
	access = SODP_ACCESS_RW;
	if (!strcmp(argv[2], "odp"))
		access |= IBV_ACCESS_ON_DEMAND;
	if (sodp_dev_open(&dev, name) || sodp_pair_connect(&dev, &pair))
		return 2;
	list = argv[3];
	for (what = strtok_r(list, ",", &save); what;
	     what = strtok_r(NULL, ",", &save)) {
		bad = run_one(&dev, &pair, argv[1], argv[2], what, access);
		if (bad < 0) {
			/* A failed access leaves the QP in error: stop. */
			ret = 2;
			break;
		}
		if (bad && !ret)
			ret = 1;
	}
	sodp_pair_destroy(&pair);
	sodp_dev_close(&dev);
	return ret;
}
