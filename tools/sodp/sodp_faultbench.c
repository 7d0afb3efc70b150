// SPDX-License-Identifier: GPL-2.0
/*
 * sodp_faultbench: the cost of one ODP fault, seen by the requester.
 *
 * For one device (SODP_DEVICE) and each KIND given, registers a fresh
 * region of N 2 MiB chunks (2 MiB aligned) as an ODP MR and issues 2N
 * 8-byte RDMA READs of it, one at a time (post, spin for the
 * completion): for each chunk, a cold READ of its first byte (nothing of
 * the chunk mirrored), then at once the same READ warm. The kinds take
 * turns chunk by chunk, so that a change of the machine's load over the
 * run moves them alike and their ratios compare like with like. A READ,
 * not a WRITE: its completion needs the responder's data, so it includes
 * the responder's fault (siw completes a WRITE once TCP has it). Each cold READ lands in a chunk no
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
 * the others. One line per KIND for the bench scripts:
 *   fault KIND N FAULTS PAGES WANT COLD_US WARM_US US_PER_FAULT BAD
 * FAULTS and PAGES the page_faults and pages_faulted of the 2N READs,
 * WANT the pages they must have mirrored (N x PAGES), COLD_US and WARM_US
 * the median cold and warm READ, US_PER_FAULT a number or "invalid", BAD
 * wrong bytes over all READs. Not a test: compare only within one run.
 *
 * Usage: SODP_DEVICE=dev sodp_faultbench {page|window|huge}... [N]
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
#define MAX_KINDS 3
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
 * One 8-byte READ of @raddr into @local, waited for by spinning with
 * sched_yield() (no sleep between polls, whose timer slack would land in
 * the figure).
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

/* One KIND: its region, its MR and its READs' times. */
struct kind {
	const char *name;
	size_t pages;		/* what one fault must mirror */
	bool fresh, huge;
	uint8_t *raw, *remote;
	struct ibv_mr *mr;
	long thp0, thp1;
	struct sodp_mr_stats s0, s1, s2;
	double *cold, *warm, *diff;
	size_t bad;
};

static int kind_init(struct kind *k, const char *name, size_t n)
{
	k->name = name;
	k->fresh = !strcmp(name, "page");
	k->huge = !strcmp(name, "huge");
	if (k->fresh)
		k->pages = 1;
	else if (!strcmp(name, "window"))
		k->pages = fault_around();
	else if (k->huge)
		k->pages = HUGE_SZ / 4096;
	else
		return -EINVAL;
	k->raw = sodp_map_anon((n + 1) * HUGE_SZ);
	k->cold = calloc(n, sizeof(*k->cold));
	k->warm = calloc(n, sizeof(*k->warm));
	k->diff = calloc(n, sizeof(*k->diff));
	if (!k->raw || !k->cold || !k->warm || !k->diff)
		return -ENOMEM;
	k->remote = (uint8_t *)(((uintptr_t)k->raw + HUGE_SZ - 1) &
				~(HUGE_SZ - 1));
	k->thp0 = anon_huge_kb();
	/* page: nothing written, the READs must return zeros */
	if (prepare(k->remote, n, k->fresh ? 0 : k->pages, k->huge))
		return -EIO;
	k->thp1 = anon_huge_kb();
	return 0;
}

/* Prints the kind's lines; 0, 3 (wrong bytes) or 4 (invalid). */
static int kind_report(struct kind *k, const char *dev, size_t n)
{
	uint64_t faults = k->s1.page_faults - k->s0.page_faults;
	uint64_t mirrored = k->s1.pages_faulted - k->s0.pages_faulted;
	uint64_t check_faults = k->s2.page_faults - k->s1.page_faults;
	double mcold = median(k->cold, n), mwarm = median(k->warm, n);
	double mdiff = median(k->diff, n);
	const char *why = NULL;
	char us[32];

	if (faults != n)
		why = "faults != N";
	else if (mirrored != n * k->pages)
		why = "pages mirrored != N x PAGES";
	else if (check_faults)
		why = "check pass faulted";
	else if (k->bad)
		why = "wrong bytes";
	else if (mdiff <= 0)
		why = "median cold - warm <= 0";
	if (why)
		snprintf(us, sizeof(us), "invalid");
	else
		snprintf(us, sizeof(us), "%.2f", mdiff);

	printf("# %s %s: AnonHugePages +%ld kB over %zu MiB\n", dev, k->name,
	       k->thp1 - k->thp0, n * HUGE_SZ >> 20);
	/* median cold/warm us, faults/pages mirrored/faults of the check */
	printf("# %s %s: %zu READs: %.1f/%.1f us, %llu/%llu/%llu (want %zu/%zu/0)%s%s\n",
	       dev, k->name, n, mcold, mwarm, (unsigned long long)faults,
	       (unsigned long long)mirrored, (unsigned long long)check_faults,
	       n, n * k->pages, why ? ": invalid, " : "", why ? why : "");
	printf("fault %s %zu %llu %llu %zu %.1f %.1f %s %zu\n", k->name, n,
	       (unsigned long long)faults, (unsigned long long)mirrored,
	       n * k->pages, mcold, mwarm, us, k->bad);
	return k->bad ? 3 : why ? 4 : 0;
}

static void kind_fini(struct kind *k, size_t n)
{
	sodp_mr_dereg(&k->mr);
	sodp_unmap(k->raw, (n + 1) * HUGE_SZ);
	free(k->diff);
	free(k->warm);
	free(k->cold);
}

int main(int argc, char **argv)
{
	const char *name = getenv("SODP_DEVICE"), *names[MAX_KINDS];
	struct kind kinds[MAX_KINDS] = {};
	size_t n = 256, nk = 0, i, j;
	struct sodp_pair pair;
	struct ibv_mr *lmr;
	struct sodp_dev dev;
	uint8_t *local, *l;
	struct kind *k;
	uint64_t raddr;
	int ret = 0, r;
	char *end;

	for (i = 1; i < (size_t)argc; i++) {
		unsigned long v = strtoul(argv[i], &end, 0);

		if (*argv[i] && !*end)
			n = v;
		else if (nk < MAX_KINDS)
			names[nk++] = argv[i];
		else
			n = 0;
	}
	if (!name || !nk || !n) {
		fprintf(stderr, "usage: SODP_DEVICE=dev %s {page|window|huge}... [N]\n",
			argv[0]);
		return 2;
	}
	for (j = 0; j < nk; j++) {
		r = kind_init(&kinds[j], names[j], n);
		if (r == -EINVAL)
			fprintf(stderr, "%s: unknown kind %s\n", argv[0], names[j]);
		if (r)
			return r == -EINVAL ? 2 : 1;
	}

	local = sodp_map_anon(nk * n * 16);
	if (!local || sodp_dev_open(&dev, name) ||
	    sodp_pair_connect(&dev, &pair))
		return 1;
	lmr = sodp_mr_reg(&dev, local, nk * n * 16, SODP_ACCESS_RW);
	if (!lmr)
		return 1;
	for (j = 0; j < nk; j++) {
		k = &kinds[j];
		k->mr = sodp_mr_reg(&dev, k->remote, n * HUGE_SZ,
				    SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
		if (!k->mr || sodp_mr_stats_get(name, k->mr->lkey, &k->s0))
			return 1;
	}

	/*
	 * Chunk i of each kind cold, then at once the same READ warm: the
	 * pair's difference is the fault, whatever the load does to the guest
	 * over the run; the kinds take turns, so that the load moves them
	 * alike.
	 */
	memset(local, 0xa5, nk * n * 16);
	for (i = 0; i < n; i++) {
		for (j = 0; j < nk; j++) {
			k = &kinds[j];
			l = local + (j * n + i) * 16;
			raddr = (uintptr_t)k->remote + i * HUGE_SZ;
			k->cold[i] = read_one(&pair, l, lmr->lkey, raddr,
					      k->mr->rkey);
			k->warm[i] = read_one(&pair, l + 8, lmr->lkey, raddr,
					      k->mr->rkey);
			if (k->cold[i] < 0 || k->warm[i] < 0)
				return 1;
			k->diff[i] = k->cold[i] - k->warm[i];
		}
	}
	for (j = 0; j < nk; j++) {
		k = &kinds[j];
		l = local + j * n * 16;
		if (sodp_mr_stats_get(name, k->mr->lkey, &k->s1))
			return 1;
		k->bad = check(l, n, 16, k->fresh) +
			 check(l + 8, n, 16, k->fresh);
	}
	/* Untimed: all chunks again, still mirrored. */
	memset(local, 0xa5, nk * n * 16);
	for (j = 0; j < nk; j++) {
		k = &kinds[j];
		l = local + j * n * 16;
		for (i = 0; i < n; i++)
			if (read_one(&pair, l + i * 16, lmr->lkey,
				     (uintptr_t)k->remote + i * HUGE_SZ,
				     k->mr->rkey) < 0)
				return 1;
		if (sodp_mr_stats_get(name, k->mr->lkey, &k->s2))
			return 1;
		k->bad += check(l, n, 16, k->fresh);
	}

	for (j = 0; j < nk; j++) {
		r = kind_report(&kinds[j], name, n);
		if (r > ret)
			ret = r;
	}
	for (j = 0; j < nk; j++)
		kind_fini(&kinds[j], n);
	sodp_mr_dereg(&lmr);
	sodp_pair_destroy(&pair);
	sodp_dev_close(&dev);
	sodp_unmap(local, nk * n * 16);
	return ret;
}
