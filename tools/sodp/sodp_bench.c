// SPDX-License-Identifier: GPL-2.0
/*
 * sodp_bench: first-touch cost of ODP memory, measured in one process.
 *
 * For one device (SODP_DEVICE) and one opcode, streams RDMA WRITEs (or
 * READs) of CHUNK bytes over a REGION of fresh anonymous memory registered
 * as an ODP MR on the responder side: once while every page is cold (never
 * touched, not mirrored), then again over the same, now warm, pages; and
 * the same two passes over a pinned MR. Then a third, fresh, ODP MR that a
 * synchronous prefetch (ibv_advise_mr PREFETCH_WRITE with FLUSH, through
 * ibv_cmd_advise_mr: librxe and libsiw 44 have no advise_mr) mirrors
 * before its first pass. Prints MB/s for each and the cold/warm ratio.
 * Not a test: numbers under TCG swing, so compare only within one run.
 *
 * Every pass checks its data: after a WRITE the remote region holds the
 * local pattern, after a READ the local region holds the remote's zeros
 * (the remote pages are never written by the CPU, so a READ of cold
 * memory reads fresh zero pages).
 *
 * Besides the human-readable summary, one line per pass for the bench
 * scripts:
 *   first_touch OP MODE PASS MB/S BAD
 * MODE pinned or odp, PASS cold, warm, prefetched (the pass after the
 * prefetch) or with_prefetch (the prefetch's time included), BAD the
 * number of wrong bytes in the destination after the pass.
 *
 * Usage: sodp_bench [write|read] [region MiB] [chunk KiB]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "sodp_lib.h"

#define WINDOW	32

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Stream @len bytes in @chunk pieces with WINDOW in flight; MB/s or < 0. */
static double stream(struct sodp_pair *pair, enum ibv_wr_opcode op,
		     void *local, uint32_t lkey, uint64_t remote, uint32_t rkey,
		     size_t len, size_t chunk)
{
	size_t posted = 0, done = 0, n = len / chunk;
	struct ibv_wc wc;
	double t0 = now();

	while (done < n) {
		while (posted < n && posted - done < WINDOW) {
			if (sodp_post_rdma(&pair->cli, op, posted,
					   (char *)local + posted * chunk,
					   chunk, lkey, remote + posted * chunk,
					   rkey, 0))
				return -1;
			posted++;
		}
		if (sodp_poll_one(pair->cli.scq, &wc, 30000))
			return -1;
		if (wc.status != IBV_WC_SUCCESS) {
			fprintf(stderr, "wc status %s\n",
				ibv_wc_status_str(wc.status));
			return -1;
		}
		done++;
	}
	return len / (now() - t0) / 1e6;
}

#define SEED	0x62656e6368ull

/*
 * Wrong bytes in the destination of @op after a pass (see the top). A
 * WRITE completion does not mean the data was placed (siw completes it
 * once TCP has it): a SEND received after it does. The pass's time does
 * not include that wait.
 */
static size_t bad_bytes(struct sodp_pair *pair, enum ibv_wr_opcode op,
			const char *local, const char *remote, size_t len)
{
	size_t i, bad = 0;

	if (op == IBV_WR_RDMA_WRITE && sodp_pair_sync(pair))
		return len;

	for (i = 0; i < len; i++) {
		if (op == IBV_WR_RDMA_WRITE)
			bad += (uint8_t)remote[i] != sodp_pattern_byte(SEED, i);
		else
			bad += local[i] != 0;
	}
	return bad;
}

static void report(enum ibv_wr_opcode op, const char *mode, const char *pass,
		   double mbps, size_t bad)
{
	printf("first_touch %s %s %s %.1f %zu\n",
	       op == IBV_WR_RDMA_WRITE ? "write" : "read", mode, pass, mbps,
	       bad);
}

/* Synchronous prefetch of [addr, addr + len) of @mr; seconds or < 0. */
static double prefetch(struct ibv_mr *mr, void *addr, size_t len)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr,
		.length = len,
		.lkey = mr->lkey,
	};
	double t0 = now();
	int ret;

	ret = ibv_cmd_advise_mr(mr->pd, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
				IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1);
	if (ret) {
		fprintf(stderr, "ibv_cmd_advise_mr: %s\n", strerror(ret));
		return -1;
	}
	return now() - t0;
}

/*
 * @mode: 0 pinned, 1 ODP, 2 ODP prefetched. Fills @cold (the first pass)
 * and @warm (the second).
 */
static int run(struct sodp_dev *dev, struct sodp_pair *pair,
	       enum ibv_wr_opcode op, size_t len, size_t chunk, int mode,
	       double *cold, double *warm)
{
	int access = SODP_ACCESS_RW | (mode ? IBV_ACCESS_ON_DEMAND : 0);
	const char *name = mode ? "odp" : "pinned";
	struct ibv_mr *lmr = NULL, *rmr = NULL;
	char *local, *remote;
	double t = 0;
	int ret = -1;

	local = sodp_map_anon(len);
	remote = sodp_map_anon(len);
	if (!local || !remote)
		goto out;
	/* The local side is warm and pinned in every case. */
	sodp_pattern_fill(local, len, SEED, 0);
	lmr = sodp_mr_reg(dev, local, len, SODP_ACCESS_RW);
	rmr = sodp_mr_reg(dev, remote, len, access);
	if (!lmr || !rmr)
		goto out;

	if (mode == 2) {
		t = prefetch(rmr, remote, len);
		if (t < 0)
			goto out;
	}
	*cold = stream(pair, op, local, lmr->lkey, (uintptr_t)remote,
		       rmr->rkey, len, chunk);
	if (*cold <= 0)
		goto out;
	if (mode == 2) {
		report(op, name, "prefetched", *cold,
		       bad_bytes(pair, op, local, remote, len));
		report(op, name, "with_prefetch", len / (len / *cold / 1e6 + t) / 1e6,
		       bad_bytes(pair, op, local, remote, len));
		ret = 0;
		goto out;
	}
	report(op, name, "cold", *cold, bad_bytes(pair, op, local, remote, len));
	/* READ: the next pass must bring the zeros back. */
	if (op == IBV_WR_RDMA_READ)
		sodp_pattern_fill(local, len, SEED, 0);
	*warm = stream(pair, op, local, lmr->lkey, (uintptr_t)remote,
		       rmr->rkey, len, chunk);
	if (*warm <= 0)
		goto out;
	report(op, name, "warm", *warm, bad_bytes(pair, op, local, remote, len));
	ret = 0;
out:
	if (rmr)
		sodp_mr_dereg(&rmr);
	if (lmr)
		sodp_mr_dereg(&lmr);
	sodp_unmap(local, len);
	sodp_unmap(remote, len);
	return ret;
}

int main(int argc, char **argv)
{
	const char *name = getenv("SODP_DEVICE");
	enum ibv_wr_opcode op = IBV_WR_RDMA_WRITE;
	size_t len = 64ul << 20, chunk = 64ul << 10;
	double pc, pw, oc, ow, fc, fw;
	struct sodp_pair pair;
	struct sodp_dev dev;

	if (argc > 1 && !strcmp(argv[1], "read"))
		op = IBV_WR_RDMA_READ;
	if (argc > 2)
		len = strtoul(argv[2], NULL, 0) << 20;
	if (argc > 3)
		chunk = strtoul(argv[3], NULL, 0) << 10;
	if (!name || !chunk || len < chunk) {
		fprintf(stderr, "usage: SODP_DEVICE=dev %s [write|read] [MiB] [KiB]\n",
			argv[0]);
		return 2;
	}
	len -= len % chunk;

	if (sodp_dev_open(&dev, name) || sodp_pair_connect(&dev, &pair))
		return 1;
	if (run(&dev, &pair, op, len, chunk, 0, &pc, &pw) ||
	    run(&dev, &pair, op, len, chunk, 1, &oc, &ow))
		return 1;
	printf("# %s %s %zu MiB in %zu KiB: pinned cold %.1f warm %.1f MB/s; "
	       "odp cold %.1f warm %.1f MB/s; odp cold/warm %.2f; "
	       "odp warm/pinned warm %.2f\n",
	       name, op == IBV_WR_RDMA_WRITE ? "write" : "read", len >> 20,
	       chunk >> 10, pc, pw, oc, ow, oc / ow, ow / pw);
	if (run(&dev, &pair, op, len, chunk, 2, &fc, &fw))
		return 1;
	sodp_pair_destroy(&pair);
	sodp_dev_close(&dev);
	return 0;
}
