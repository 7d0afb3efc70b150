// SPDX-License-Identifier: GPL-2.0
/*
 * sodp_faultbench: the cost of one ODP fault, seen by the requester.
 *
 * For one device (SODP_DEVICE) and one KIND, registers a fresh region of
 * N 2 MiB chunks (2 MiB aligned) as an ODP MR and issues 2N 8-byte RDMA
 * READs of it, one at a time (post, spin for the completion): for each
 * chunk, a cold READ of its first byte (nothing of the chunk mirrored),
 * then at once the same READ warm. A READ, not a WRITE: its completion
 * needs the responder's data, so it includes the responder's fault (siw
 * completes a WRITE once TCP has it). Each cold READ lands in a chunk no
 * earlier READ touched, so no fault finds its pages mirrored by an
 * earlier one, and every fault pays the same per-chunk cost (the mirror
 * table's chunk). The figure is
 *
 *   median over the chunks of (cold READ - warm READ)   us per fault
 *
 * a difference of two READs a few microseconds apart, so that the load
 * of the machine, which moves a TCG guest's timings by milliseconds over
 * a run, cancels. The sodp counters of the MR ("rdma statistic show
 * mr": page_faults, pages_faulted) before and after the READs, and after
 * an untimed check pass over all chunks, prove what happened: the figure
 * is printed only if the READs took exactly N faults (every cold READ
 * needs one, so the warm ones took none) that mirrored exactly N x PAGES
 * pages, the check pass none, every byte was right and the median is
 * above 0; else "invalid".
 *
 * KIND is one of (PAGES: what one fault must mirror)
 *   page    never-touched anonymous memory, MADV_NOHUGEPAGE: each READ
 *           faults its page in (a read fault maps the zero page); no
 *           neighbour is present, so fault-around mirrors nothing more
 *           (PAGES 1);
 *   window  MADV_NOHUGEPAGE memory whose first fault_around_pages pages
 *           of each chunk the CPU wrote first (present, not mirrored):
 *           each fault mirrors that window (PAGES fault_around_pages);
 *   huge    MADV_HUGEPAGE memory the CPU wrote first (AnonHugePages is
 *           printed): each fault mirrors a 2 MiB THP (PAGES 512).
 *
 * Without MADV_NOHUGEPAGE the first two would measure THPs (and the huge
 * zero page), with THP "always" as in the guests.
 *
 * Every READ's 8 bytes are checked: zeros for page, the CPU's pattern for
 * the others. One line for the bench scripts:
 *   fault KIND N FAULTS PAGES WANT COLD_US WARM_US US_PER_FAULT BAD
 * FAULTS and PAGES the page_faults and pages_faulted of the 2N READs,
 * WANT the pages they must have mirrored (N x PAGES), COLD_US and WARM_US
 * the median cold and warm READ, US_PER_FAULT a number or "invalid", BAD
 * wrong bytes over all READs. Not a test: compare only within one run.
 *
 * Usage: SODP_DEVICE=dev sodp_faultbench page|window|huge [N]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
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
 * One 8-byte READ of @raddr into @local, waited for by spinning (no
 * sleep: a nanosleep() in a TCG guest takes longer than a fault).
 * Microseconds, or < 0.
 */
static double read_one(struct sodp_pair *pair, uint8_t *local, uint32_t lkey,
		       uint64_t raddr, uint32_t rkey)
{
	double t0 = now_us(), t;
	struct ibv_wc wc;
	int n;

	if (sodp_post_rdma(&pair->cli, IBV_WR_RDMA_READ, raddr, local, 8,
			   lkey, raddr, rkey, 0))
		return -1;
	for (;;) {
		n = ibv_poll_cq(pair->cli.scq, 1, &wc);
		t = now_us() - t0;
		if (n)
			break;
		if (t > 30e6) {
			fprintf(stderr, "READ of 0x%llx: no completion in 30 s\n",
				(unsigned long long)raddr);
			return -1;
		}
		sched_yield();
	}
	if (n < 0 || wc.status != IBV_WC_SUCCESS) {
		fprintf(stderr, "READ of 0x%llx: %s\n",
			(unsigned long long)raddr,
			n < 0 ? "poll failed" : ibv_wc_status_str(wc.status));
		return -1;
	}
	return t;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Wrong bytes among the @n 8-byte READs of chunk i at @local + i * @step. */
static size_t check(const uint8_t *local, size_t n, size_t step, bool zeros)
{
	size_t i, j, bad = 0;

	for (i = 0; i < n; i++)
		for (j = 0; j < 8; j++)
			bad += local[i * step + j] !=
			       (zeros ? 0 : sodp_pattern_byte(SEED, i * HUGE_SZ + j));
	return bad;
}

/* The CPU's part of KIND: what it writes first, the madvise() it needs. */
static int prepare(uint8_t *remote, size_t n, size_t pages, bool huge)
{
	size_t c, off;

	if (madvise(remote, n * HUGE_SZ, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)) {
		perror("madvise");
		return -1;
	}
	if (!pages)
		return 0;
	for (c = 0; c < n; c++)
		for (off = 0; off < pages * 4096; off += 4096)
			sodp_pattern_fill(remote + c * HUGE_SZ + off, 4096, SEED,
					  c * HUGE_SZ + off);
	return 0;
}

int main(int argc, char **argv)
{
	const char *name = getenv("SODP_DEVICE"), *kind, *why = NULL;
	struct sodp_mr_stats s0, s1, s2;
	double *cold, *warm, *diff, mcold, mwarm, mdiff;
	size_t n = 256, pages, len, bad, i;
	uint64_t faults, mirrored, warm_faults;
	struct ibv_mr *lmr, *rmr;
	uint8_t *local, *raw, *remote;
	long thp0 = -1, thp1 = -1;
	struct sodp_pair pair;
	struct sodp_dev dev;
	uint64_t raddr;
	char us[32];
	bool fresh, huge;

	kind = argc > 1 ? argv[1] : "";
	if (argc > 2)
		n = strtoul(argv[2], NULL, 0);
	if (!strcmp(kind, "page"))
		pages = 1;
	else if (!strcmp(kind, "window"))
		pages = fault_around();
	else if (!strcmp(kind, "huge"))
		pages = HUGE_SZ / 4096;
	else
		pages = 0;
	if (!name || !pages || !n) {
		fprintf(stderr, "usage: SODP_DEVICE=dev %s page|window|huge [N]\n",
			argv[0]);
		return 2;
	}
	fresh = !strcmp(kind, "page");
	huge = !strcmp(kind, "huge");
	len = n * HUGE_SZ;

	raw = sodp_map_anon(len + HUGE_SZ);
	local = sodp_map_anon(n * 16);
	cold = calloc(n, sizeof(*cold));
	warm = calloc(n, sizeof(*warm));
	diff = calloc(n, sizeof(*diff));
	if (!raw || !local || !cold || !warm || !diff)
		return 1;
	remote = (uint8_t *)(((uintptr_t)raw + HUGE_SZ - 1) & ~(HUGE_SZ - 1));
	thp0 = anon_huge_kb();
	/* page: nothing written, the READs must return zeros */
	if (prepare(remote, n, fresh ? 0 : pages, huge))
		return 1;
	thp1 = anon_huge_kb();

	if (sodp_dev_open(&dev, name) || sodp_pair_connect(&dev, &pair))
		return 1;
	lmr = sodp_mr_reg(&dev, local, n * 16, SODP_ACCESS_RW);
	rmr = sodp_mr_reg(&dev, remote, len,
			  SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
	if (!lmr || !rmr)
		return 1;

	/*
	 * Chunk i cold, then at once chunk i warm: the pair's difference is
	 * the fault, whatever the load does to the guest over the whole run.
	 */
	if (sodp_mr_stats_get(name, rmr->lkey, &s0))
		return 1;
	memset(local, 0xa5, n * 16);
	for (i = 0; i < n; i++) {
		raddr = (uintptr_t)remote + i * HUGE_SZ;
		cold[i] = read_one(&pair, local + i * 16, lmr->lkey, raddr,
				   rmr->rkey);
		warm[i] = read_one(&pair, local + i * 16 + 8, lmr->lkey, raddr,
				   rmr->rkey);
		if (cold[i] < 0 || warm[i] < 0)
			return 1;
		diff[i] = cold[i] - warm[i];
	}
	if (sodp_mr_stats_get(name, rmr->lkey, &s1))
		return 1;
	bad = check(local, n, 16, fresh) + check(local + 8, n, 16, fresh);
	/* Untimed: all chunks again, still mirrored. */
	memset(local, 0xa5, n * 16);
	for (i = 0; i < n; i++)
		if (read_one(&pair, local + i * 16, lmr->lkey,
			     (uintptr_t)remote + i * HUGE_SZ, rmr->rkey) < 0)
			return 1;
	if (sodp_mr_stats_get(name, rmr->lkey, &s2))
		return 1;
	bad += check(local, n, 16, fresh);
	mcold = median(cold, n);
	mwarm = median(warm, n);
	mdiff = median(diff, n);

	faults = s1.page_faults - s0.page_faults;
	mirrored = s1.pages_faulted - s0.pages_faulted;
	warm_faults = s2.page_faults - s1.page_faults;
	if (faults != n)
		why = "cold faults != N";
	else if (mirrored != n * pages)
		why = "pages mirrored != N x PAGES";
	else if (warm_faults)
		why = "check pass faulted";
	else if (bad)
		why = "wrong bytes";
	else if (mdiff <= 0)
		why = "median cold - warm <= 0";
	if (why)
		snprintf(us, sizeof(us), "invalid");
	else
		snprintf(us, sizeof(us), "%.2f", mdiff);

	printf("# AnonHugePages %ld -> %ld kB (%zu MiB)\n", thp0, thp1,
	       len >> 20);
	/* median cold/warm us, faults/pages mirrored/faults of the check */
	printf("# %s %s: %zu READs: %.1f/%.1f us, %llu/%llu/%llu (want %zu/%zu/0)%s%s\n",
	       name, kind, n, mcold, mwarm, (unsigned long long)faults,
	       (unsigned long long)mirrored, (unsigned long long)warm_faults,
	       n, n * pages, why ? ": invalid, " : "", why ? why : "");
	printf("fault %s %zu %llu %llu %zu %.1f %.1f %s %zu\n", kind, n,
	       (unsigned long long)faults, (unsigned long long)mirrored,
	       n * pages, mcold, mwarm, us, bad);

	sodp_mr_dereg(&rmr);
	sodp_mr_dereg(&lmr);
	sodp_pair_destroy(&pair);
	sodp_dev_close(&dev);
	sodp_unmap(local, n * 16);
	free(diff);
	free(warm);
	free(cold);
	sodp_unmap(raw, len + HUGE_SZ);
	return bad ? 3 : why ? 4 : 0;
}
