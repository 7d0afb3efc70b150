// SPDX-License-Identifier: GPL-2.0
/*
 * sodp_faultbench: the cost of one ODP fault, seen by the requester.
 *
 * For one device (SODP_DEVICE) and one KIND, registers a fresh region as
 * an ODP MR and issues N 8-byte RDMA READs of it, one at a time (post,
 * wait for the completion), each to a distinct page STRIDE bytes apart:
 * once cold (nothing mirrored), then the same N READs again warm. A READ,
 * not a WRITE: its completion needs the responder's data, so it includes
 * the responder's fault (siw completes a WRITE once TCP has it). The
 * sodp counters of the MR ("rdma statistic show mr": page_faults,
 * pages_faulted) before and after each pass say how many faults really
 * happened; the figure is
 *
 *   (cold - warm) / faults   microseconds per fault
 *
 * KIND is one of
 *   page    never-touched anonymous memory, stride 4 KiB: each READ faults
 *           one page in (allocation, mapping, mirroring);
 *   window  memory the CPU wrote first (present, not mirrored), stride
 *           fault_around_pages pages: each fault mirrors a whole window;
 *   huge    MADV_HUGEPAGE memory the CPU wrote first (THP where the kernel
 *           gave them: AnonHugePages is printed), stride 2 MiB: each fault
 *           mirrors a 2 MiB huge page.
 *
 * Every READ's 8 bytes are checked: zeros for page, the CPU's pattern for
 * the others. One line for the bench scripts:
 *   fault KIND N FAULTS PAGES COLD_US WARM_US US_PER_FAULT BAD
 * FAULTS and PAGES the page_faults and pages_faulted of the cold pass,
 * COLD_US and WARM_US the passes' times, BAD wrong bytes over both passes.
 * Not a test: compare only within one run.
 *
 * Usage: SODP_DEVICE=dev sodp_faultbench page|window|huge [N]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "sodp_lib.h"

#define SEED	0x6661756c74ull
#define HUGE_SZ	(2ul << 20)
#define FA_PARAM "/sys/module/sodp/parameters/fault_around_pages"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* The effective fault-around window in pages (see sodp_param_fault_around). */
static unsigned long fault_around(void)
{
	unsigned long n = 16, p = 1;
	char buf[32];

	if (!sodp_read_line(FA_PARAM, buf, sizeof(buf)))
		n = strtoul(buf, NULL, 0);
	if (n < 1)
		n = 1;
	if (n > 512)
		n = 512;
	while (p * 2 <= n)
		p *= 2;
	return p;
}

static long anon_huge_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f;

	f = fopen("/proc/self/smaps_rollup", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * One pass: @n READs of 8 bytes at @remote + i * @stride into @local + 8i,
 * one at a time. Microseconds, or < 0. Adds the wrong bytes to *@bad.
 */
static double pass(struct sodp_pair *pair, uint8_t *local, uint32_t lkey,
		   const uint8_t *remote, uint32_t rkey, size_t n,
		   size_t stride, bool zeros, size_t *bad)
{
	struct ibv_wc wc;
	double t0, t;
	size_t i, j;

	memset(local, 0xa5, n * 8);
	t0 = now_us();
	for (i = 0; i < n; i++) {
		if (sodp_post_rdma(&pair->cli, IBV_WR_RDMA_READ, i,
				   local + i * 8, 8, lkey,
				   (uintptr_t)remote + i * stride, rkey, 0) ||
		    sodp_poll_one(pair->cli.scq, &wc, 30000))
			return -1;
		if (wc.status != IBV_WC_SUCCESS) {
			fprintf(stderr, "READ %zu: %s\n", i,
				ibv_wc_status_str(wc.status));
			return -1;
		}
	}
	t = now_us() - t0;
	for (i = 0; i < n; i++)
		for (j = 0; j < 8; j++)
			*bad += local[i * 8 + j] !=
				(zeros ? 0 : sodp_pattern_byte(SEED, i * stride + j));
	return t;
}

int main(int argc, char **argv)
{
	const char *name = getenv("SODP_DEVICE"), *kind;
	struct sodp_mr_stats s0, s1, s2;
	size_t n = 256, stride, len, bad = 0, i;
	struct ibv_mr *lmr, *rmr;
	uint8_t *local, *raw, *remote;
	long thp0 = -1, thp1 = -1;
	struct sodp_pair pair;
	struct sodp_dev dev;
	double cold, warm;
	uint64_t faults;
	bool zeros;

	kind = argc > 1 ? argv[1] : "";
	if (argc > 2)
		n = strtoul(argv[2], NULL, 0);
	if (!strcmp(kind, "page"))
		stride = 4096;
	else if (!strcmp(kind, "window"))
		stride = fault_around() * 4096;
	else if (!strcmp(kind, "huge"))
		stride = HUGE_SZ;
	else
		stride = 0;
	if (!name || !stride || !n) {
		fprintf(stderr, "usage: SODP_DEVICE=dev %s page|window|huge [N]\n",
			argv[0]);
		return 2;
	}
	zeros = stride == 4096;
	len = n * stride;

	raw = sodp_map_anon(len + HUGE_SZ);
	local = sodp_map_anon(n * 8);
	if (!raw || !local)
		return 1;
	remote = (uint8_t *)(((uintptr_t)raw + HUGE_SZ - 1) & ~(HUGE_SZ - 1));
	if (stride == HUGE_SZ) {
		if (madvise(remote, len, MADV_HUGEPAGE))
			perror("madvise(MADV_HUGEPAGE)");
		thp0 = anon_huge_kb();
	}
	if (!zeros)
		for (i = 0; i < len; i += 4096)
			sodp_pattern_fill(remote + i, 4096, SEED, i);
	if (stride == HUGE_SZ)
		thp1 = anon_huge_kb();

	if (sodp_dev_open(&dev, name) || sodp_pair_connect(&dev, &pair))
		return 1;
	lmr = sodp_mr_reg(&dev, local, n * 8, SODP_ACCESS_RW);
	rmr = sodp_mr_reg(&dev, remote, len,
			  SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
	if (!lmr || !rmr)
		return 1;

	if (sodp_mr_stats_get(name, rmr->lkey, &s0))
		return 1;
	cold = pass(&pair, local, lmr->lkey, remote, rmr->rkey, n, stride,
		    zeros, &bad);
	if (cold < 0 || sodp_mr_stats_get(name, rmr->lkey, &s1))
		return 1;
	warm = pass(&pair, local, lmr->lkey, remote, rmr->rkey, n, stride,
		    zeros, &bad);
	if (warm < 0 || sodp_mr_stats_get(name, rmr->lkey, &s2))
		return 1;

	faults = s1.page_faults - s0.page_faults;
	if (stride == HUGE_SZ)
		printf("# AnonHugePages %ld -> %ld kB (%zu MiB)\n",
		       thp0, thp1, len >> 20);
	/* cold/warm us, cold faults/pages mirrored/warm faults */
	printf("# %s %s: %zu READs %zu B apart: %.0f/%.0f us, %llu/%llu/%llu\n",
	       name, kind, n, stride, cold, warm,
	       (unsigned long long)faults,
	       (unsigned long long)(s1.pages_faulted - s0.pages_faulted),
	       (unsigned long long)(s2.page_faults - s1.page_faults));
	printf("fault %s %zu %llu %llu %.0f %.0f %.2f %zu\n", kind, n,
	       (unsigned long long)faults,
	       (unsigned long long)(s1.pages_faulted - s0.pages_faulted),
	       cold, warm, faults ? (cold - warm) / faults : 0.0, bad);

	sodp_mr_dereg(&rmr);
	sodp_mr_dereg(&lmr);
	sodp_pair_destroy(&pair);
	sodp_dev_close(&dev);
	sodp_unmap(local, n * 8);
	sodp_unmap(raw, len + HUGE_SZ);
	return bad ? 3 : 0;
}
