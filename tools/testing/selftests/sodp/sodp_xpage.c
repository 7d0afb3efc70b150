// SPDX-License-Identifier: GPL-2.0
/*
 * Short and long transfers whose source or destination crosses a page
 * boundary: RDMA READ, RDMA WRITE and SEND of 1..16, 31..33, 4095, 4097 and
 * 8195 bytes at every pair of page offsets 4090..4095 and 0 on both sides,
 * through plain (pinned) and ODP MRs. Every byte that lands is checked
 * against a pattern that encodes its source address and the iteration, and
 * 16 guard bytes on each side of the destination must stay untouched.
 *
 * siw builds an FPDU of up to 32 payload bytes by copying the payload into
 * the header (siw_try_1seg()); from the siw_tx thread it copies page by
 * page. A READ response always goes out from there; a WRITE or SEND only
 * when the send queue is resumed by the kernel, so the *_fenced cases post
 * each behind a READ with IBV_SEND_FENCE, which the READ response resumes.
 *
 * The odp_cold variant's source is a memfd whose pages are written with
 * pwrite() and zapped from the page table before each transfer, so that
 * siw's transmit thread finds them missing and defers their faults.
 *
 * Run once per device with SODP_DEVICE=<ibdev> (test_sodp.sh does that).
 */
#include "sodp_test.h"

#define XPAGE_TIMEOUT	120	/* seconds per case, TCG guest */
#define GUARD		16	/* checked bytes on each side of the data */
#define BUF_PAGES	6	/* page 0: guard, data from page 1 on */
#define SCRATCH_OFF	(5 * 4096)	/* the fencing READ's 1 byte */
#define MAX_REPORTS	40	/* failing combinations printed per case */
#define DUMP_MAX	40	/* bytes of one got/want dump */

#define WRID_OP		0x78706730ull
#define WRID_FENCE	0x78706731ull
#define WRID_RECV	0x78706732ull

enum xop { XOP_READ, XOP_WRITE, XOP_SEND, XOP_WRITE_FENCED, XOP_SEND_FENCED };

static const char * const xop_names[] = {
	[XOP_READ] = "read",
	[XOP_WRITE] = "write",
	[XOP_SEND] = "send",
	[XOP_WRITE_FENCED] = "write_fenced",
	[XOP_SEND_FENCED] = "send_fenced",
};

static const unsigned int sizes[] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	31, 32, 33, 4095, 4097, 8192 + 3,
};

static const unsigned int offsets[] = { 4090, 4091, 4092, 4093, 4094, 4095, 0 };

FIXTURE(xpage) {
	struct sodp_dev dev;
	struct sodp_pair pair;
	size_t len;
	uint8_t *src;		/* read by the transfer */
	uint8_t *dst;		/* written by the transfer */
	struct ibv_mr *smr;
	struct ibv_mr *dmr;
	int src_fd;		/* the memfd behind @src of a cold variant */
};

FIXTURE_VARIANT(xpage) {
	bool odp;
	bool cold;	/* @src is a memfd, written by pwrite() and unmapped */
};

FIXTURE_VARIANT_ADD(xpage, pinned) {
	.odp = false,
};

FIXTURE_VARIANT_ADD(xpage, odp) {
	.odp = true,
};

/*
 * Every source page is missing from the page table when the transfer
 * reads it: siw's transmit thread defers its fault (siw_sodp_tx_defer())
 * and starts the WQE over. Destination offsets 4093 and 0 only.
 */
FIXTURE_VARIANT_ADD(xpage, odp_cold) {
	.odp = true,
	.cold = true,
};

FIXTURE_SETUP(xpage)
{
	const char *name = getenv("SODP_DEVICE");
	int access = SODP_ACCESS_RW;

	if (!name || !*name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	ASSERT_EQ(4096, sodp_page_size());
	ASSERT_EQ(0, sodp_dev_open(&self->dev, name));
	if (variant->odp) {
		uint32_t rc = self->dev.odp.per_transport_caps.rc_odp_caps;
		uint32_t need = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV |
				IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ;

		if (!(self->dev.odp.general_caps & IBV_ODP_SUPPORT) ||
		    (rc & need) != need)
			SKIP(return, "%s has no RC ODP", name);
		access |= IBV_ACCESS_ON_DEMAND;
	}
	self->len = BUF_PAGES * 4096;
	self->src_fd = -1;
	if (variant->cold) {
		self->src_fd = memfd_create("sodp_xpage", 0);
		ASSERT_LE(0, self->src_fd);
		ASSERT_EQ(0, ftruncate(self->src_fd, self->len));
		self->src = mmap(NULL, self->len, PROT_READ | PROT_WRITE,
				 MAP_SHARED, self->src_fd, 0);
		ASSERT_NE(MAP_FAILED, self->src);
	} else {
		self->src = sodp_map_anon(self->len);
		ASSERT_NE(NULL, self->src);
	}
	self->dst = sodp_map_anon(self->len);
	ASSERT_NE(NULL, self->dst);
	memset(self->src, 0, self->len);
	memset(self->dst, 0, self->len);
	self->smr = sodp_mr_reg(&self->dev, self->src, self->len, access);
	ASSERT_NE(NULL, self->smr);
	self->dmr = sodp_mr_reg(&self->dev, self->dst, self->len, access);
	ASSERT_NE(NULL, self->dmr);
	ASSERT_EQ(0, sodp_pair_connect(&self->dev, &self->pair));
	TH_LOG("%s, %s MRs, pin_mode %s", name,
	       variant->cold ? "ODP (cold memfd source)" :
	       variant->odp ? "ODP" : "plain",
	       sodp_pin_mode_str(sodp_pin_mode()));
}

FIXTURE_TEARDOWN(xpage)
{
	sodp_pair_destroy(&self->pair);
	sodp_mr_dereg(&self->smr);
	sodp_mr_dereg(&self->dmr);
	if (self->src_fd >= 0) {
		munmap(self->src, self->len);
		close(self->src_fd);
	} else {
		sodp_unmap(self->src, self->len);
	}
	sodp_unmap(self->dst, self->len);
	sodp_dev_close(&self->dev);
}

/*
 * The byte at offset @pos of the source buffer in iteration @gen: its page
 * offset, its page number and the iteration, so that a shifted, stale or
 * wrong-page byte differs from the one expected.
 */
static uint8_t pat(size_t pos, uint32_t gen)
{
	return (uint8_t)(pos + (pos >> 12) * 0x35 + gen * 0x6b);
}

/* The guard byte of iteration @gen, around the destination range. */
static uint8_t guard_byte(uint32_t gen)
{
	return (uint8_t)(0xc3 ^ gen);
}

static void dump(char *out, size_t cap, const uint8_t *p, size_t n)
{
	size_t i, used = 0;

	out[0] = '\0';
	for (i = 0; i < n && used + 3 < cap; i++)
		used += snprintf(out + used, cap - used, "%02x", p[i]);
}

/* Wait for one completion of @wr_id on @cq: 0 or a negative errno. */
static int wait_wc(struct ibv_cq *cq, int tmo, uint64_t wr_id,
		   uint32_t byte_len, const char *what)
{
	struct ibv_wc wc;
	int ret = sodp_poll_one(cq, &wc, tmo);

	if (ret)
		return ret;
	if (wc.status != IBV_WC_SUCCESS || wc.wr_id != wr_id ||
	    (byte_len != UINT32_MAX && wc.byte_len != byte_len)) {
		printf("# %s: wr_id %#llx status %s len %u, expected %#llx len %u\n",
		       what, (unsigned long long)wc.wr_id,
		       ibv_wc_status_str(wc.status), wc.byte_len,
		       (unsigned long long)wr_id, byte_len);
		return -EIO;
	}
	return 0;
}

/*
 * One transfer of @size bytes from page offset @soff of the source to
 * page offset @doff of the destination (both in page 1 on).
 */
static int xfer(FIXTURE_DATA(xpage) *self, enum xop op, unsigned int size,
		size_t s, size_t d)
{
	struct sodp_pair *pair = &self->pair;
	int tmo = self->dev.timeout_ms;
	struct ibv_sge sge = {
		.addr = (uintptr_t)(self->src + s),
		.length = size,
		.lkey = self->smr->lkey,
	};
	struct ibv_sge fsge = {
		.addr = (uintptr_t)(self->dst + SCRATCH_OFF),
		.length = 1,
		.lkey = self->dmr->lkey,
	};
	struct ibv_send_wr fence = {
		.wr_id = WRID_FENCE,
		.sg_list = &fsge,
		.num_sge = 1,
		.opcode = IBV_WR_RDMA_READ,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = {
			.remote_addr = (uintptr_t)(self->src + SCRATCH_OFF),
			.rkey = self->smr->rkey,
		},
	};
	struct ibv_send_wr wr = {
		.wr_id = WRID_OP,
		.sg_list = &sge,
		.num_sge = 1,
		.send_flags = IBV_SEND_SIGNALED,
	}, *first = &wr, *bad = NULL;
	bool is_send = op == XOP_SEND || op == XOP_SEND_FENCED;
	int ret;

	switch (op) {
	case XOP_READ:
		/* Into the destination, from the source as the remote. */
		sge.addr = (uintptr_t)(self->dst + d);
		sge.lkey = self->dmr->lkey;
		wr.opcode = IBV_WR_RDMA_READ;
		wr.wr.rdma.remote_addr = (uintptr_t)(self->src + s);
		wr.wr.rdma.rkey = self->smr->rkey;
		break;
	case XOP_WRITE_FENCED:
	case XOP_WRITE:
		wr.opcode = IBV_WR_RDMA_WRITE;
		wr.wr.rdma.remote_addr = (uintptr_t)(self->dst + d);
		wr.wr.rdma.rkey = self->dmr->rkey;
		break;
	case XOP_SEND_FENCED:
	case XOP_SEND:
		wr.opcode = IBV_WR_SEND;
		break;
	}
	if (op == XOP_WRITE_FENCED || op == XOP_SEND_FENCED) {
		wr.send_flags |= IBV_SEND_FENCE;
		fence.next = &wr;
		first = &fence;
	}
	if (is_send) {
		ret = sodp_post_recv(&pair->srv, WRID_RECV, self->dst + d,
				     size, self->dmr->lkey);
		if (ret)
			return ret;
	}
	ret = ibv_post_send(pair->cli.qp, first, &bad);
	if (ret) {
		printf("# ibv_post_send(%s): %s\n", xop_names[op],
		       strerror(abs(ret)));
		return -abs(ret);
	}
	if (first == &fence) {
		ret = wait_wc(pair->cli.scq, tmo, WRID_FENCE, UINT32_MAX,
			      "fencing READ");
		if (ret)
			return ret;
	}
	ret = wait_wc(pair->cli.scq, tmo, WRID_OP,
		      op == XOP_READ ? size : UINT32_MAX, xop_names[op]);
	if (ret)
		return ret;
	if (is_send)
		return wait_wc(pair->srv.rcq, tmo, WRID_RECV, size, "RECV");
	if (op != XOP_READ)
		return sodp_pair_sync(pair);
	return 0;
}

/*
 * Check the destination after one transfer of @size bytes from source
 * offset @s to destination offset @d in iteration @gen, and describe a
 * failure in @why: the number of wrong bytes, guard bytes included.
 */
static unsigned int check_one(FIXTURE_DATA(xpage) *self, unsigned int size,
			      size_t s, size_t d, uint32_t gen, char *why,
			      size_t why_len)
{
	char got[2 * DUMP_MAX + 1], want[2 * DUMP_MAX + 1];
	unsigned int i, wrong = 0, first = 0;
	uint8_t g = guard_byte(gen);
	uint8_t exp[DUMP_MAX];
	size_t from, n;

	for (i = 0; i < size; i++) {
		if (self->dst[d + i] == pat(s + i, gen))
			continue;
		if (!wrong++)
			first = i;
	}
	for (i = 0; i < GUARD; i++) {
		if (self->dst[d - GUARD + i] != g ||
		    self->dst[d + size + i] != g)
			wrong++;
	}
	if (!wrong)
		return 0;
	from = size <= DUMP_MAX ? 0 : first;
	n = size - from < DUMP_MAX ? size - from : DUMP_MAX;
	for (i = 0; i < n; i++)
		exp[i] = pat(s + from + i, gen);
	dump(got, sizeof(got), self->dst + d + from, n);
	dump(want, sizeof(want), exp, n);
	snprintf(why, why_len, "%u wrong (first at %u), bytes %zu..: got %s want %s",
		 wrong, first, from, got, want);
	return wrong;
}

/*
 * Write the pattern of iteration @gen to [@s, @s + @size) of the source.
 * A cold source is written through its file and its pages are then zapped
 * from the page table, the data staying in the page cache.
 */
static int fill_src(FIXTURE_DATA(xpage) *self,
		    const FIXTURE_VARIANT(xpage) *variant, size_t s,
		    unsigned int size, uint32_t gen)
{
	uint8_t buf[8192 + 4];
	size_t first = s & ~(size_t)4095, end = s + size;
	unsigned int i;

	if (!variant->cold) {
		for (i = 0; i < size; i++)
			self->src[s + i] = pat(s + i, gen);
		return 0;
	}
	if (size > sizeof(buf))
		return -EINVAL;
	for (i = 0; i < size; i++)
		buf[i] = pat(s + i, gen);
	errno = 0;
	if (pwrite(self->src_fd, buf, size, s) != (ssize_t)size)
		return errno ? -errno : -EIO;
	end = (end + 4095) & ~(size_t)4095;
	if (madvise(self->src + first, end - first, MADV_DONTNEED))
		return -errno;
	return 0;
}

/*
 * Every size at every pair of offsets: the number of combinations that
 * moved a wrong byte (the first MAX_REPORTS are printed), or a negative
 * errno when a transfer itself failed.
 */
static int run_matrix(struct __test_metadata *_metadata,
		      FIXTURE_DATA(xpage) *self,
		      const FIXTURE_VARIANT(xpage) *variant, enum xop op)
{
	unsigned int si, oi, di, nbad = 0, ncomb = 0;
	const char *name = xop_names[op];
	uint32_t gen = 0;
	char why[256];

	for (si = 0; si < ARRAY_SIZE(sizes); si++) {
		unsigned int size = sizes[si];

		for (oi = 0; oi < ARRAY_SIZE(offsets); oi++) {
			for (di = 0; di < ARRAY_SIZE(offsets); di++) {
				size_t s = 4096 + offsets[oi];
				size_t d = 4096 + offsets[di];
				int ret;

				if (variant->cold && offsets[di] != 4093 &&
				    offsets[di] != 0)
					continue;
				gen++;
				ret = fill_src(self, variant, s, size, gen);
				if (ret) {
					TH_LOG("source fill: %s", strerror(-ret));
					return ret;
				}
				memset(self->dst + d - GUARD, guard_byte(gen),
				       size + 2 * GUARD);
				ret = xfer(self, op, size, s, d);
				if (ret) {
					TH_LOG("%s size %u soff %u doff %u: transfer failed: %d",
					       name, size, offsets[oi],
					       offsets[di], ret);
					return ret;
				}
				ncomb++;
				if (!check_one(self, size, s, d, gen, why,
					       sizeof(why)))
					continue;
				if (nbad++ < MAX_REPORTS)
					TH_LOG("%s size %u soff %u doff %u: %s",
					       name, size, offsets[oi],
					       offsets[di], why);
			}
		}
	}
	TH_LOG("%s: %u of %u combinations moved wrong bytes", name, nbad,
	       ncomb);
	return nbad;
}

/*
 * A cold source on siw: the transmit thread (READ responses, fenced WRITEs
 * and SENDs) deferred its faults, which the source MR's counter shows.
 */
static void expect_deferred(struct __test_metadata *_metadata,
			    FIXTURE_DATA(xpage) *self,
			    const FIXTURE_VARIANT(xpage) *variant, enum xop op)
{
	struct sodp_mr_stats st;

	if (!variant->cold || !self->dev.iwarp || op == XOP_WRITE ||
	    op == XOP_SEND)
		return;
	ASSERT_EQ(0, sodp_mr_stats_get(self->dev.name, self->smr->lkey, &st));
	TH_LOG("%s: source MR deferrals %llu, page faults %llu",
	       xop_names[op], (unsigned long long)st.deferrals,
	       (unsigned long long)st.page_faults);
	ASSERT_LT(0ull, (unsigned long long)st.deferrals);
}

static void run_case(struct __test_metadata *_metadata,
		     FIXTURE_DATA(xpage) *self,
		     const FIXTURE_VARIANT(xpage) *variant, enum xop op)
{
	ASSERT_EQ(0, run_matrix(_metadata, self, variant, op));
	expect_deferred(_metadata, self, variant, op);
}

TEST_F_TIMEOUT(xpage, read, XPAGE_TIMEOUT)
{
	run_case(_metadata, self, variant, XOP_READ);
}

TEST_F_TIMEOUT(xpage, write, XPAGE_TIMEOUT)
{
	run_case(_metadata, self, variant, XOP_WRITE);
}

TEST_F_TIMEOUT(xpage, send, XPAGE_TIMEOUT)
{
	run_case(_metadata, self, variant, XOP_SEND);
}

TEST_F_TIMEOUT(xpage, write_fenced, XPAGE_TIMEOUT)
{
	run_case(_metadata, self, variant, XOP_WRITE_FENCED);
}

TEST_F_TIMEOUT(xpage, send_fenced, XPAGE_TIMEOUT)
{
	run_case(_metadata, self, variant, XOP_SEND_FENCED);
}

TEST_HARNESS_MAIN
