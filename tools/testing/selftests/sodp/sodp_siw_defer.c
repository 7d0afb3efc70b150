// SPDX-License-Identifier: GPL-2.0
/*
 * siw receive deferral under stress. siw places received data in softirq,
 * where an ODP page that is not resident cannot be faulted: the receive
 * path stops at that byte, leaves the rest of the stream in the socket and
 * a work item faults the page in and resumes (TCP flow control holds the
 * sender back meanwhile). These cases make that happen many times within
 * one message and check that nothing is lost, that memory the process
 * cannot write ends the connection instead of hanging it, and that tearing
 * everything down with a deferral pending is safe.
 *
 * siw only (other devices skip), and only with ODP support. Run with
 * SODP_DEVICE=siw0 (test_sodp.sh does that). The deferral counter is read
 * from /sys/kernel/debug/sodp/deferrals when debugfs is mounted.
 */
#include "sodp_test.h"
#include <dlfcn.h>

#define WRID_SEND	0x53454e44ull
#define WRID_RECV	0x52454356ull
#define WRID_RDMA	0x52444d41ull

#define DEFER_TIMEOUT	300	/* seconds per case, TCG guest */
#define BIG		(32u << 20)
#define MID		(8u << 20)
#define SENTINEL	0xa5

#define DEFERRALS	"/sys/kernel/debug/sodp/deferrals"

/* The first offset where @buf differs from the pattern slice, and why. */
#define ASSERT_PATTERN(buf, len, seed, pos) do {			\
	const uint8_t *__b = (const uint8_t *)(buf);			\
	uint64_t __seed = (seed);					\
	size_t __pos = (pos);						\
	ssize_t __off = sodp_pattern_check(__b, (len), __seed, __pos);	\
	if (__off >= 0)							\
		TH_LOG("pattern mismatch at offset %zd: 0x%02x, expected 0x%02x", \
		       __off, __b[__off],				\
		       sodp_pattern_byte(__seed, __pos + __off));	\
	ASSERT_EQ(-1, __off);						\
} while (0)

/* The first byte of @buf that is not @val. */
#define ASSERT_BYTES(buf, len, val) do {				\
	const uint8_t *__b = (const uint8_t *)(buf);			\
	uint8_t __val = (val);						\
	ssize_t __off = sodp_byte_check(__b, (len), __val);		\
	if (__off >= 0)							\
		TH_LOG("byte at offset %zd is 0x%02x, expected 0x%02x",	\
		       __off, __b[__off], __val);			\
	ASSERT_EQ(-1, __off);						\
} while (0)

/* Total deferrals of all siw QPs, or -1 if debugfs is not available. */
static long long read_deferrals(void)
{
	long long v = -1;
	FILE *f = fopen(DEFERRALS, "r");

	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static void expect_wc(struct __test_metadata *_metadata, struct ibv_cq *cq,
		      int timeout_ms, uint64_t wr_id,
		      enum ibv_wc_status status, int64_t byte_len)
{
	struct ibv_wc wc;

	ASSERT_EQ(0, sodp_poll_one(cq, &wc, timeout_ms));
	if (wc.status != status || wc.wr_id != wr_id)
		TH_LOG("wr_id %#llx status %s (%d), expected %#llx %s (%d)",
		       (unsigned long long)wc.wr_id,
		       ibv_wc_status_str(wc.status), wc.status,
		       (unsigned long long)wr_id, ibv_wc_status_str(status),
		       status);
	ASSERT_EQ(status, wc.status);
	ASSERT_EQ(wr_id, wc.wr_id);
	if (byte_len >= 0)
		ASSERT_EQ(byte_len, (int64_t)wc.byte_len);
}

FIXTURE(defer) {
	struct sodp_dev dev;
	struct sodp_pair pair;
	uint64_t seed;
	int tmo;
	size_t len;
	uint8_t *src;		/* requester buffer */
	uint8_t *dst;		/* responder buffer */
	struct ibv_mr *smr;
	struct ibv_mr *dmr;
};

FIXTURE_SETUP(defer)
{
	const char *name = getenv("SODP_DEVICE");
	struct ibv_device_attr_ex ax = {};

	if (!name || !*name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	ASSERT_EQ(0, sodp_dev_open(&self->dev, name));
	if (!self->dev.iwarp)
		SKIP(return, "%s is not siw: no receive deferral", name);
	ASSERT_EQ(0, ibv_query_device_ex(self->dev.ctx, NULL, &ax));
	if (!(ax.odp_caps.general_caps & IBV_ODP_SUPPORT) ||
	    !(ax.odp_caps.per_transport_caps.rc_odp_caps &
	      IBV_ODP_SUPPORT_WRITE))
		SKIP(return, "%s has no ODP", name);

	self->seed = sodp_seed(_metadata->name);
	/* Deferrals wait for faults: be generous on a TCG guest. */
	self->tmo = self->dev.timeout_ms * 6;
	ASSERT_EQ(0, sodp_pair_connect(&self->dev, &self->pair));
}

FIXTURE_TEARDOWN(defer)
{
	sodp_mr_dereg(&self->smr);
	sodp_mr_dereg(&self->dmr);
	sodp_pair_destroy(&self->pair);
	if (self->src)
		sodp_unmap(self->src, self->len);
	if (self->dst)
		sodp_unmap(self->dst, self->len);
	sodp_dev_close(&self->dev);
}

/* A warm, patterned source and a cold (never touched) ODP target. */
static void setup_bufs(struct __test_metadata *_metadata,
		       FIXTURE_DATA(defer) *self, size_t len, int dst_access)
{
	self->len = len;
	self->src = sodp_map_anon(len);
	ASSERT_NE(NULL, self->src);
	self->dst = sodp_map_anon(len);
	ASSERT_NE(NULL, self->dst);
	sodp_pattern_fill(self->src, len, self->seed, 0);

	self->smr = sodp_mr_reg(&self->dev, self->src, len,
				SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
	ASSERT_NE(NULL, self->smr);
	self->dmr = sodp_mr_reg(&self->dev, self->dst, len,
				dst_access | IBV_ACCESS_ON_DEMAND);
	ASSERT_NE(NULL, self->dmr);
}

/*
 * One 32 MiB RDMA WRITE into a cold ODP MR: the responder misses on page
 * after page inside the same message and defers each miss. All of it
 * arrives byte for byte; the deferral counter grows. Then the target is
 * dropped with MADV_DONTNEED and written again (now every page is gone
 * from a mirror that had it), with the same result.
 */
TEST_F_TIMEOUT(defer, big_write_cold, DEFER_TIMEOUT)
{
	long long before, after;
	int round;

	setup_bufs(_metadata, self, BIG, SODP_ACCESS_RW);

	for (round = 0; round < 2; round++) {
		before = read_deferrals();
		ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE,
					    WRID_RDMA, self->src, BIG,
					    self->smr->lkey,
					    (uintptr_t)self->dst,
					    self->dmr->rkey, 0));
		expect_wc(_metadata, self->pair.cli.scq, self->tmo, WRID_RDMA,
			  IBV_WC_SUCCESS, BIG);
		ASSERT_EQ(0, sodp_pair_sync(&self->pair));
		ASSERT_PATTERN(self->dst, BIG, self->seed, 0);

		after = read_deferrals();
		TH_LOG("round %d: %lld deferrals", round, after - before);
		if (before >= 0)
			ASSERT_LT(before, after);
		ASSERT_EQ(0, madvise(self->dst, BIG, MADV_DONTNEED));
		ASSERT_BYTES(self->dst, BIG, 0);
	}
}

/* 8 MiB SEND into a RECV whose ODP buffer is cold. */
TEST_F_TIMEOUT(defer, send_cold, DEFER_TIMEOUT)
{
	setup_bufs(_metadata, self, MID, IBV_ACCESS_LOCAL_WRITE);

	ASSERT_EQ(0, sodp_post_recv(&self->pair.srv, WRID_RECV, self->dst,
				    MID, self->dmr->lkey));
	ASSERT_EQ(0, sodp_post_send(&self->pair.cli, WRID_SEND, self->src,
				    MID, self->smr->lkey));
	expect_wc(_metadata, self->pair.cli.scq, self->tmo, WRID_SEND,
		  IBV_WC_SUCCESS, MID);
	expect_wc(_metadata, self->pair.srv.rcq, self->tmo, WRID_RECV,
		  IBV_WC_SUCCESS, MID);
	ASSERT_PATTERN(self->dst, MID, self->seed, 0);
}

/*
 * 8 MiB RDMA READ: the responder reads a cold ODP source (transmit faults
 * in process context) and the requester places the response into a cold
 * ODP sink (receive deferrals).
 */
TEST_F_TIMEOUT(defer, read_cold, DEFER_TIMEOUT)
{
	/* Both MRs are fresh: neither mirror holds a page yet. */
	setup_bufs(_metadata, self, MID, SODP_ACCESS_RW);

	/* The client reads the server-side buffer @src into its @dst. */
	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_READ,
				    WRID_RDMA, self->dst, MID, self->dmr->lkey,
				    (uintptr_t)self->src, self->smr->rkey, 0));
	expect_wc(_metadata, self->pair.cli.scq, self->tmo, WRID_RDMA,
		  IBV_WC_SUCCESS, MID);
	ASSERT_PATTERN(self->dst, MID, self->seed, 0);
}

/*
 * RDMA WRITE into an ODP MR whose memory was made read-only after the
 * registration: the deferred fault fails with -EFAULT and the responder
 * terminates the connection (as for an invalid STag) instead of retrying.
 * The requester's QP goes to error (a RECV posted before is flushed), the
 * part of the target beyond the first page stays untouched, and the
 * process lives on to tear everything down.
 */
TEST_F_TIMEOUT(defer, write_readonly_target, DEFER_TIMEOUT)
{
	long pg = sodp_page_size();
	uint8_t *rbuf;
	struct ibv_mr *rmr;

	setup_bufs(_metadata, self, MID, SODP_ACCESS_RW);
	memset(self->dst, SENTINEL, MID);
	ASSERT_EQ(0, mprotect(self->dst, MID, PROT_READ));

	rbuf = self->src + MID - pg;
	rmr = sodp_mr_reg(&self->dev, rbuf, pg, IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, rmr);
	ASSERT_EQ(0, sodp_post_recv(&self->pair.cli, WRID_RECV, rbuf, 64,
				    rmr->lkey));
	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_RDMA, self->src, MID / 2,
				    self->smr->lkey, (uintptr_t)self->dst,
				    self->dmr->rkey, 0));
	/*
	 * iWARP WRITEs are not acknowledged: the WRITE itself completes
	 * when TCP took it or is flushed when the connection drops first.
	 */
	{
		struct ibv_wc wc;

		ASSERT_EQ(0, sodp_poll_one(self->pair.cli.scq, &wc,
					   self->tmo));
		ASSERT_EQ(WRID_RDMA, wc.wr_id);
		TH_LOG("WRITE completed with %s", ibv_wc_status_str(wc.status));
	}
	expect_wc(_metadata, self->pair.cli.rcq, self->tmo, WRID_RECV,
		  IBV_WC_WR_FLUSH_ERR, -1);
	ASSERT_BYTES(self->dst, MID, SENTINEL);
	ASSERT_EQ(0, ibv_dereg_mr(rmr));
}

/*
 * Deregister the target MR and destroy both QPs while a 32 MiB WRITE into
 * the cold target is still deferring: the deferral work holds its own
 * references, so nothing is used after it is freed, and the process and
 * the kernel survive (vm-run fails the run on any splat).
 */
TEST_F_TIMEOUT(defer, teardown_while_deferred, DEFER_TIMEOUT)
{
	setup_bufs(_metadata, self, BIG, SODP_ACCESS_RW);

	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_RDMA, self->src, BIG, self->smr->lkey,
				    (uintptr_t)self->dst, self->dmr->rkey, 0));
	usleep(20000);
	ASSERT_EQ(0, sodp_mr_dereg(&self->dmr));
	sodp_pair_destroy(&self->pair);
	ASSERT_EQ(0, sodp_mr_dereg(&self->smr));
}

typedef int (*advise_fn)(struct ibv_pd *pd, enum ibv_advise_mr_advice advice,
			 uint32_t flags, struct ibv_sge *sg_list,
			 uint32_t num_sge);

/*
 * ibv_advise_mr(), or, where the provider does not implement it (libsiw of
 * rdma-core 44), libibverbs' own command, which providers that do forward
 * to: the kernel's advise_mr is what is under test.
 */
static int advise_mr(struct ibv_pd *pd, enum ibv_advise_mr_advice advice,
		     uint32_t flags, struct ibv_sge *sge, uint32_t num_sge)
{
	advise_fn cmd;
	int ret;

	ret = ibv_advise_mr(pd, advice, flags, sge, num_sge);
	if (ret != EOPNOTSUPP)
		return ret;
	cmd = (advise_fn)dlsym(RTLD_DEFAULT, "ibv_cmd_advise_mr");
	return cmd ? cmd(pd, advice, flags, sge, num_sge) : ret;
}

/*
 * ibv_advise_mr(PREFETCH_WRITE, FLUSH) on the cold target before a WRITE:
 * the receive path then finds every page mirrored and needs (almost) no
 * deferral; the data arrives byte for byte.
 */
TEST_F_TIMEOUT(defer, prefetched_write, DEFER_TIMEOUT)
{
	long long before, after;
	struct ibv_sge sge;

	setup_bufs(_metadata, self, MID, SODP_ACCESS_RW);
	sge.addr = (uintptr_t)self->dst;
	sge.length = MID;
	sge.lkey = self->dmr->lkey;
	ASSERT_EQ(0, advise_mr(self->dev.pd,
			       IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
			       IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1));

	before = read_deferrals();
	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_RDMA, self->src, MID, self->smr->lkey,
				    (uintptr_t)self->dst, self->dmr->rkey, 0));
	expect_wc(_metadata, self->pair.cli.scq, self->tmo, WRID_RDMA,
		  IBV_WC_SUCCESS, MID);
	ASSERT_EQ(0, sodp_pair_sync(&self->pair));
	ASSERT_PATTERN(self->dst, MID, self->seed, 0);
	after = read_deferrals();
	TH_LOG("%lld deferrals after prefetch", after - before);
	/* The sodp cache holds 512 dirty pages: trims may still defer. */
	if (before >= 0)
		ASSERT_GT(MID / sodp_page_size() / 64, after - before);
}

/*
 * RDMA WRITE through an implicit ODP MR (the whole address space) into a
 * cold buffer that was never registered on its own.
 */
TEST_F_TIMEOUT(defer, implicit_write, DEFER_TIMEOUT)
{
	struct ibv_device_attr_ex ax = {};
	struct ibv_mr *imr;

	ASSERT_EQ(0, ibv_query_device_ex(self->dev.ctx, NULL, &ax));
	if (!(ax.odp_caps.general_caps & IBV_ODP_SUPPORT_IMPLICIT))
		SKIP(return, "no implicit ODP");
	setup_bufs(_metadata, self, MID, SODP_ACCESS_RW);
	imr = sodp_mr_reg(&self->dev, NULL, SIZE_MAX,
			  SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
	ASSERT_NE(NULL, imr);

	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_RDMA, self->src, MID, self->smr->lkey,
				    (uintptr_t)self->dst, imr->rkey, 0));
	expect_wc(_metadata, self->pair.cli.scq, self->tmo, WRID_RDMA,
		  IBV_WC_SUCCESS, MID);
	ASSERT_EQ(0, sodp_pair_sync(&self->pair));
	ASSERT_PATTERN(self->dst, MID, self->seed, 0);
	ASSERT_EQ(0, ibv_dereg_mr(imr));
}

TEST_HARNESS_MAIN
