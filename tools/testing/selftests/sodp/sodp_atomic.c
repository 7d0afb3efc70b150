// SPDX-License-Identifier: GPL-2.0
/*
 * RDMA atomics on one 8-byte word reached through two MRs at once: a plain
 * (pinned) MR and an ODP MR over the same anonymous page, each hammered by
 * its own RC QP pair from its own thread. The responder serves the two MRs
 * by different paths (rxe's page list and the sodp lease), so the two must
 * be atomic against each other: every FETCH_ADD of 1 must return a value
 * no other one returned and the word must end at the number of adds; every
 * CMP_SWAP that reports a hit must have swapped a value no other hit saw.
 * The cpu variants race one QP against the process's own atomics on the
 * word instead, which any RDMA atomic must be atomic against as well.
 *
 * Needs a device with atomics and ODP atomics (rxe; siw has no atomics).
 * SODP_ATOMIC_OPS sets the operations per thread.
 */
#include "sodp_test.h"
#include <stdarg.h>
#include <pthread.h>

#define ATOMIC_TIMEOUT	300	/* seconds per case, TCG guest */
#define OPS_DEFAULT	20000	/* operations per thread */
#define WINDOW		8	/* FETCH_ADDs in flight per QP (max_rd_atomic) */
#define NSIDES		2	/* 0: pinned MR, 1: ODP MR */
#define TGT_OFF		256	/* target word inside the shared page */

struct side {
	struct sodp_pair pair;
	struct ibv_mr *tmr;		/* the target page, pinned or ODP */
	uint64_t *res;			/* WINDOW result words, pinned */
	struct ibv_mr *rmr;
	uint64_t *seen;			/* old values of adds / CMP_SWAP hits */
	size_t nseen;
	size_t ncpu;			/* updates of a @cpu side */
	int *stop;			/* set when side 0 is done */
	enum ibv_wr_opcode opcode;
	bool cpu;			/* the process's atomics, no QP */
	uint64_t *word;			/* the target, for @cpu */
	uint64_t raddr;
	unsigned int ops;
	int timeout_ms;
	pthread_barrier_t *start;
	int err;			/* 0 or negative errno */
	char why[160];
};

FIXTURE(mixed) {
	struct sodp_dev dev;
	uint8_t *page;
	long psz;
	unsigned int ops;
	struct side side[NSIDES];
};

/* Side 0 is a QP through the MR @odp0 says; side 1 an ODP QP or the CPU. */
FIXTURE_VARIANT(mixed) {
	bool odp0;
	bool cpu1;
};

FIXTURE_VARIANT_ADD(mixed, pinned_odp) {
	.odp0 = false,
	.cpu1 = false,
};

FIXTURE_VARIANT_ADD(mixed, pinned_cpu) {
	.odp0 = false,
	.cpu1 = true,
};

FIXTURE_VARIANT_ADD(mixed, odp_cpu) {
	.odp0 = true,
	.cpu1 = true,
};

FIXTURE_SETUP(mixed)
{
	const char *name = getenv("SODP_DEVICE");
	const char *ops = getenv("SODP_ATOMIC_OPS");
	struct ibv_device_attr_ex ax = {};
	int i;

	if (!name || !*name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	ASSERT_EQ(0, sodp_dev_open(&self->dev, name));
	if (self->dev.attr.atomic_cap == IBV_ATOMIC_NONE)
		SKIP(return, "%s reports no atomic support", name);
	ASSERT_EQ(0, ibv_query_device_ex(self->dev.ctx, NULL, &ax));
	if (!(ax.odp_caps.general_caps & IBV_ODP_SUPPORT) ||
	    !(ax.odp_caps.per_transport_caps.rc_odp_caps &
	      IBV_ODP_SUPPORT_ATOMIC))
		SKIP(return, "%s has no ODP atomics", name);

	self->ops = ops && *ops ? strtoul(ops, NULL, 0) : OPS_DEFAULT;
	ASSERT_LT(0u, self->ops);
	self->psz = sodp_page_size();
	self->page = sodp_map_anon(self->psz);
	ASSERT_NE(NULL, self->page);
	memset(self->page, 0, self->psz);
	for (i = 0; i < NSIDES; i++) {
		struct side *s = &self->side[i];

		s->res = sodp_map_anon(self->psz);
		ASSERT_NE(NULL, s->res);
		s->seen = calloc(self->ops, sizeof(*s->seen));
		ASSERT_NE(NULL, s->seen);
		ASSERT_EQ(0, sodp_pair_connect(&self->dev, &s->pair));
		s->tmr = sodp_mr_reg(&self->dev, self->page, self->psz,
				     IBV_ACCESS_LOCAL_WRITE |
				     IBV_ACCESS_REMOTE_ATOMIC |
				     (i || variant->odp0 ?
				      IBV_ACCESS_ON_DEMAND : 0));
		ASSERT_NE(NULL, s->tmr);
		s->rmr = sodp_mr_reg(&self->dev, s->res, self->psz,
				     IBV_ACCESS_LOCAL_WRITE);
		ASSERT_NE(NULL, s->rmr);
		s->raddr = (uintptr_t)self->page + TGT_OFF;
		s->word = (uint64_t *)(self->page + TGT_OFF);
		s->cpu = i && variant->cpu1;
		s->ops = self->ops;
		s->timeout_ms = self->dev.timeout_ms * 3;
	}
}

FIXTURE_TEARDOWN(mixed)
{
	int i;

	for (i = 0; i < NSIDES; i++) {
		struct side *s = &self->side[i];

		sodp_mr_dereg(&s->tmr);
		sodp_mr_dereg(&s->rmr);
		sodp_pair_destroy(&s->pair);
		if (s->res)
			sodp_unmap(s->res, self->psz);
		free(s->seen);
	}
	if (self->page)
		sodp_unmap(self->page, self->psz);
	sodp_dev_close(&self->dev);
}

static int side_fail(struct side *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	s->err = err;
	return err;
}

/* Reap one completion of @s; its wr_id is the result slot. */
static int side_reap(struct side *s, unsigned int *slot)
{
	enum ibv_wc_opcode op = s->opcode == IBV_WR_ATOMIC_FETCH_AND_ADD ?
				IBV_WC_FETCH_ADD : IBV_WC_COMP_SWAP;
	struct ibv_wc wc;
	int ret;

	ret = sodp_poll_one(s->pair.cli.scq, &wc, s->timeout_ms);
	if (ret)
		return side_fail(s, ret, "no completion");
	if (wc.status != IBV_WC_SUCCESS || wc.opcode != op ||
	    wc.wr_id >= WINDOW)
		return side_fail(s, -EIO, "wr_id %llu status %s opcode %d",
				 (unsigned long long)wc.wr_id,
				 ibv_wc_status_str(wc.status), wc.opcode);
	*slot = wc.wr_id;
	return 0;
}

/* FETCH_ADD 1, WINDOW at a time; keep every returned value. */
static int side_fetch_add(struct side *s)
{
	unsigned int posted = 0, done = 0, slot;
	int ret;

	for (slot = 0; slot < WINDOW && posted < s->ops; slot++, posted++) {
		ret = sodp_post_atomic(&s->pair.cli, s->opcode, slot,
				       &s->res[slot], s->rmr->lkey, s->raddr,
				       s->tmr->rkey, 1, 0);
		if (ret)
			return side_fail(s, ret, "post");
	}
	while (done < s->ops) {
		ret = side_reap(s, &slot);
		if (ret)
			return ret;
		s->seen[s->nseen++] = s->res[slot];
		done++;
		if (posted == s->ops)
			continue;
		ret = sodp_post_atomic(&s->pair.cli, s->opcode, slot,
				       &s->res[slot], s->rmr->lkey, s->raddr,
				       s->tmr->rkey, 1, 0);
		if (ret)
			return side_fail(s, ret, "post");
		posted++;
	}
	return 0;
}

/*
 * CMP_SWAP guess -> guess + 1, one at a time; a miss returns the current
 * value, the next guess. Keep the old value of every hit.
 */
static int side_cmp_swap(struct side *s)
{
	uint64_t guess = 0;
	unsigned int i, slot;
	int ret;

	for (i = 0; i < s->ops; i++) {
		ret = sodp_post_atomic(&s->pair.cli, s->opcode, 0, &s->res[0],
				       s->rmr->lkey, s->raddr, s->tmr->rkey,
				       guess, guess + 1);
		if (ret)
			return side_fail(s, ret, "post");
		ret = side_reap(s, &slot);
		if (ret)
			return ret;
		if (s->res[0] == guess) {
			s->seen[s->nseen++] = guess;
			guess++;
		} else {
			guess = s->res[0];
		}
	}
	return 0;
}

/*
 * The same two loops with the process's own atomics on the word, for as
 * long as side 0 runs. Too many to keep: only counted.
 */
static void side_cpu(struct side *s)
{
	uint64_t guess = 0;

	while (!__atomic_load_n(s->stop, __ATOMIC_ACQUIRE)) {
		if (s->opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) {
			__atomic_fetch_add(s->word, 1, __ATOMIC_SEQ_CST);
			s->ncpu++;
		} else if (__atomic_compare_exchange_n(s->word, &guess,
						       guess + 1, false,
						       __ATOMIC_SEQ_CST,
						       __ATOMIC_SEQ_CST)) {
			guess++;
			s->ncpu++;
		}
		/* A miss has loaded the current value into guess. */
	}
}

static void *side_run(void *arg)
{
	struct side *s = arg;

	pthread_barrier_wait(s->start);
	if (s->cpu)
		side_cpu(s);
	else if (s->opcode == IBV_WR_ATOMIC_FETCH_AND_ADD)
		side_fetch_add(s);
	else
		side_cmp_swap(s);
	__atomic_store_n(s->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Run both sides at once, then check: the old values of all adds (all CAS
 * hits) together are exactly 0, 1, ..., n - 1, and the word is n.
 */
static void mixed_run(struct __test_metadata *_metadata,
		      FIXTURE_DATA(mixed) *self,
		      const FIXTURE_VARIANT(mixed) *variant,
		      enum ibv_wr_opcode opcode)
{
	pthread_barrier_t start;
	pthread_t thr[NSIDES];
	int stop = 0;
	uint64_t *all, final;
	size_t n = 0, k, dups = 0, gaps = 0, ncpu = 0;
	int i;

	ASSERT_EQ(0, pthread_barrier_init(&start, NULL, NSIDES));
	for (i = 0; i < NSIDES; i++) {
		self->side[i].opcode = opcode;
		self->side[i].start = &start;
		self->side[i].stop = &stop;
		ASSERT_EQ(0, pthread_create(&thr[i], NULL, side_run,
					    &self->side[i]));
	}
	for (i = 0; i < NSIDES; i++)
		ASSERT_EQ(0, pthread_join(thr[i], NULL));
	pthread_barrier_destroy(&start);
	for (i = 0; i < NSIDES; i++) {
		if (self->side[i].err)
			TH_LOG("side %d: %s", i, self->side[i].why);
		ASSERT_EQ(0, self->side[i].err);
		n += self->side[i].nseen;
		ncpu += self->side[i].ncpu;
	}

	all = calloc(n ? n : 1, sizeof(*all));
	ASSERT_NE(NULL, all);
	memcpy(all, self->side[0].seen, self->side[0].nseen * sizeof(*all));
	memcpy(all + self->side[0].nseen, self->side[1].seen,
	       self->side[1].nseen * sizeof(*all));
	qsort(all, n, sizeof(*all), cmp_u64);
	for (k = 0; k < n; k++) {
		if (k && all[k] == all[k - 1])
			dups++;
		else if (!ncpu && all[k] != k - dups)
			gaps++;
	}
	free(all);
	final = __atomic_load_n((uint64_t *)(self->page + TGT_OFF),
				__ATOMIC_SEQ_CST);
	TH_LOG("%zu + %zu updates (%s QP + %s), word %llu, %zu duplicate old values",
	       self->side[0].nseen, self->side[1].nseen + ncpu,
	       variant->odp0 ? "ODP" : "pinned",
	       variant->cpu1 ? "CPU" : "ODP QP",
	       (unsigned long long)final, dups);
	ASSERT_EQ((size_t)0, dups);
	ASSERT_EQ((size_t)0, gaps);
	ASSERT_EQ(n + ncpu, final);
	if (opcode == IBV_WR_ATOMIC_FETCH_AND_ADD)
		ASSERT_EQ((variant->cpu1 ? 1 : NSIDES) * (size_t)self->ops, n);
	/* Nothing but the word changed. */
	for (k = 0; k < (size_t)self->psz; k++) {
		if (k >= TGT_OFF && k < TGT_OFF + 8)
			continue;
		ASSERT_EQ(0, self->page[k]);
	}
}

/*
 * FETCH_ADD 1 from both sides at once, WINDOW in flight per QP: no
 * returned value twice, the word ends at the number of adds.
 */
TEST_F_TIMEOUT(mixed, fetch_add, ATOMIC_TIMEOUT)
{
	mixed_run(_metadata, self, variant, IBV_WR_ATOMIC_FETCH_AND_ADD);
}

/*
 * CMP_SWAP counters from both sides at once: no two hits swapped the same
 * value, the word ends at the number of hits.
 */
TEST_F_TIMEOUT(mixed, cmp_swap, ATOMIC_TIMEOUT)
{
	mixed_run(_metadata, self, variant, IBV_WR_ATOMIC_CMP_AND_SWP);
}

TEST_HARNESS_MAIN
