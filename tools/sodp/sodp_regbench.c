// SPDX-License-Identifier: GPL-2.0
/*
 * sodp_regbench: what registering memory costs, pinned vs ODP.
 *
 *  reg:   ibv_reg_mr + ibv_dereg_mr of 1 MiB .. SODP_BENCH_REG_MAX_GIB GiB
 *         (default 64) of fresh MAP_NORESERVE anonymous memory, never
 *         touched by the CPU. Microseconds per register + deregister
 *         (averaged over up to 16 repetitions of the small sizes), and
 *         the kernel memory (Slab, SUnreclaim and VmallocUsed of
 *         /proc/meminfo) that the live MR holds, per GiB registered. Pinning more than the
 *         guest has is refused by the kernel when the caller runs under
 *         an RLIMIT_MEMLOCK without CAP_IPC_LOCK (scripts/guest-bench.sh
 *         sets half the guest's RAM): the refusal is reported with its
 *         errno.
 *  touch: a region of SODP_BENCH_TOUCH_MIB MiB (default 512) registered
 *         and every page brought in (pinned: by the registration; ODP: by
 *         a synchronous prefetch, ibv_advise_mr PREFETCH_WRITE + FLUSH):
 *         kernel memory per GiB touched, beyond the pages themselves.
 *  inval: the cost of the mm changing memory under a live ODP MR: a
 *         region of SODP_BENCH_INVAL_MIB MiB (default 1024), written by
 *         the CPU and, for MODE odp, registered as an ODP MR and
 *         prefetched (every page mirrored), then move_pages() of all of
 *         it to the other NUMA node (the guest needs two; else the row
 *         reports the errno), then munmap() of all of it. MODE none: the
 *         same without an MR.
 *
 * One line per measurement:
 *   reg|touch MODE BYTES US SLAB SUNRECLAIM VMALLOC ERRNO
 * (the memory figures in KiB per GiB), and for inval
 *   move_pages|munmap MODE BYTES US 0 0 0 ERRNO
 * MODE pinned or odp; ERRNO 0, or the errno of a refused registration,
 * then US and the memory figures are 0.
 *
 * Usage: SODP_DEVICE=dev sodp_regbench reg|touch|inval
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sodp_lib.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The "NAME: N kB" line of /proc/meminfo, in KiB; -1 if not found. */
static long meminfo_kib(const char *name)
{
	char line[128];
	size_t n = strlen(name);
	long val = -1;
	FILE *f;

	f = fopen("/proc/meminfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, n) && line[n] == ':') {
			val = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return val;
}

/* Kernel memory figures of /proc/meminfo, in KiB. */
struct kmem {
	long slab, sunr, vmalloc;
};

static void kmem_get(struct kmem *k)
{
	k->slab = meminfo_kib("Slab");
	k->sunr = meminfo_kib("SUnreclaim");
	k->vmalloc = meminfo_kib("VmallocUsed");
}

/* @k: the growth since before the registration, NULL if it was refused. */
static void report(const char *what, int odp, size_t len, double us,
		   const struct kmem *k, int err)
{
	double gib = (double)len / (1ul << 30);

	printf("%s %s %zu %.1f %.1f %.1f %.1f %d\n", what,
	       odp ? "odp" : "pinned", len, us, k ? k->slab / gib : 0,
	       k ? k->sunr / gib : 0, k ? k->vmalloc / gib : 0, err);
}

/* @d = the figures now minus @k0. */
static void kmem_delta(struct kmem *d, const struct kmem *k0)
{
	kmem_get(d);
	d->slab -= k0->slab;
	d->sunr -= k0->sunr;
	d->vmalloc -= k0->vmalloc;
}

static void *map_noreserve(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int reg_one(struct sodp_dev *dev, size_t len, int odp)
{
	int access = SODP_ACCESS_RW | (odp ? IBV_ACCESS_ON_DEMAND : 0);
	size_t reps = len >= (64ul << 20) ? 1 : 16;
	struct kmem k0, k = {};
	struct ibv_mr *mr;
	double t = 0, t0;
	size_t i;
	void *p;

	p = map_noreserve(len);
	if (!p) {
		report("reg", odp, len, 0, NULL, errno);
		return 0;
	}
	for (i = 0; i < reps; i++) {
		kmem_get(&k0);
		t0 = now();
		mr = sodp_mr_reg(dev, p, len, access);
		t += now() - t0;
		if (!mr) {
			report("reg", odp, len, 0, NULL, errno);
			sodp_unmap(p, len);
			return 0;
		}
		/* The memory the live MR holds, taken once. */
		if (!i)
			kmem_delta(&k, &k0);
		t0 = now();
		if (sodp_mr_dereg(&mr)) {
			sodp_unmap(p, len);
			return -1;
		}
		t += now() - t0;
	}
	report("reg", odp, len, t / reps * 1e6, &k, 0);
	sodp_unmap(p, len);
	return 0;
}

static int touch_one(struct sodp_dev *dev, size_t len, int odp)
{
	int access = SODP_ACCESS_RW | (odp ? IBV_ACCESS_ON_DEMAND : 0);
	struct kmem k0, k;
	struct ibv_mr *mr;
	struct ibv_sge sge;
	double t0, t;
	int ret = 0;
	void *p;

	p = map_noreserve(len);
	if (!p)
		return -1;
	kmem_get(&k0);
	t0 = now();
	mr = sodp_mr_reg(dev, p, len, access);
	if (!mr) {
		report("touch", odp, len, 0, NULL, errno);
		sodp_unmap(p, len);
		return 0;
	}
	if (odp) {
		sge.addr = (uintptr_t)p;
		sge.length = len;
		sge.lkey = mr->lkey;
		ret = ibv_cmd_advise_mr(mr->pd,
					IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
					IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1);
	}
	t = now() - t0;
	kmem_delta(&k, &k0);
	if (ret)
		report("touch", odp, len, 0, NULL, ret);
	else
		report("touch", odp, len, t * 1e6, &k, 0);
	sodp_mr_dereg(&mr);
	sodp_unmap(p, len);
	return 0;
}

static void report_inval(const char *what, int odp, size_t len, double us,
			 int err)
{
	printf("%s %s %zu %.1f 0 0 0 %d\n", what, odp ? "odp" : "none", len,
	       err ? 0 : us, err);
}

static int inval_one(struct sodp_dev *dev, size_t len, int odp)
{
	size_t i, n = len / sodp_page_size();
	struct ibv_mr *mr = NULL;
	int *nodes, *status;
	struct ibv_sge sge;
	void **pages;
	double t0, t;
	char *p;
	long ret;
	int err;

	pages = calloc(n, sizeof(*pages));
	nodes = calloc(n, sizeof(*nodes));
	status = calloc(n, sizeof(*status));
	p = map_noreserve(len);
	if (!pages || !nodes || !status || !p) {
		ret = -1;
		goto out;
	}
	memset(p, 0x6d, len);
	for (i = 0; i < n; i++)
		pages[i] = p + i * sodp_page_size();
	if (odp) {
		mr = sodp_mr_reg(dev, p, len,
				 SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
		if (!mr) {
			report_inval("move_pages", odp, len, 0, errno);
			report_inval("munmap", odp, len, 0, errno);
			ret = 0;
			goto out;
		}
		sge.addr = (uintptr_t)p;
		sge.length = len;
		sge.lkey = mr->lkey;
		err = ibv_cmd_advise_mr(mr->pd,
					IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
					IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1);
		if (err)
			fprintf(stderr, "ibv_cmd_advise_mr: %s\n",
				strerror(err));
	}
	/* To the node the first page is not on. */
	ret = syscall(SYS_move_pages, 0, 1, pages, NULL, status, 0);
	t0 = now();
	ret = ret ? ret : sodp_move_pages_to(pages, n, nodes, status,
					     status[0] == 0 ? 1 : 0);
	t = now() - t0;
	err = ret < 0 ? errno : 0;
	report_inval("move_pages", odp, len, t * 1e6, err);
	t0 = now();
	err = munmap(p, len) ? errno : 0;
	t = now() - t0;
	report_inval("munmap", odp, len, t * 1e6, err);
	p = NULL;
	ret = 0;
out:
	sodp_mr_dereg(&mr);
	if (p)
		sodp_unmap(p, len);
	free(pages);
	free(nodes);
	free(status);
	return ret ? -1 : 0;
}

int main(int argc, char **argv)
{
	const char *name = getenv("SODP_DEVICE");
	const char *env;
	size_t len, max = 64ul << 30, touch = 512ul << 20, inval = 1ul << 30;
	struct sodp_dev dev;
	int odp, ret = 0;

	env = getenv("SODP_BENCH_REG_MAX_GIB");
	if (env)
		max = strtoul(env, NULL, 0) << 30;
	env = getenv("SODP_BENCH_TOUCH_MIB");
	if (env)
		touch = strtoul(env, NULL, 0) << 20;
	env = getenv("SODP_BENCH_INVAL_MIB");
	if (env)
		inval = strtoul(env, NULL, 0) << 20;
	if (argc != 2 || !name ||
	    (strcmp(argv[1], "reg") && strcmp(argv[1], "touch") &&
	     strcmp(argv[1], "inval"))) {
		fprintf(stderr, "usage: SODP_DEVICE=dev %s reg|touch|inval\n",
			argv[0]);
		return 2;
	}
	if (sodp_dev_open(&dev, name))
		return 1;
	if (!strcmp(argv[1], "reg")) {
		for (len = 1ul << 20; len <= max && !ret; len <<= 2)
			for (odp = 0; odp < 2 && !ret; odp++)
				ret = reg_one(&dev, len, odp);
	} else if (!strcmp(argv[1], "touch")) {
		for (odp = 0; odp < 2 && !ret; odp++)
			ret = touch_one(&dev, touch, odp);
	} else {
		for (odp = 0; odp < 2 && !ret; odp++)
			ret = inval_one(&dev, inval, odp);
	}
	sodp_dev_close(&dev);
	return ret ? 1 : 0;
}
