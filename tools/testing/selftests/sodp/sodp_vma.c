// SPDX-License-Identifier: GPL-2.0
/*
 * Memory that sodp must refuse, as get_user_pages() does: hmm_range_fault()
 * mirrors pages that GUP keeps off limits, so sodp applies GUP's VMA rules
 * itself, at registration and at every fault.
 *
 * - secretmem (memfd_secret(2)): its pages are removed from the kernel's
 *   direct map; reaching one through an MR must neither oops the kernel nor
 *   let the secret leave the process. Cases: an ODP MR over it, an ODP MR
 *   whose anonymous memory is replaced by it after traffic, the implicit
 *   ODP MR, prefetch, and plain MRs under every sodp.pin_mode (auto falls
 *   back to sodp when pinning fails: the fallback must refuse it too).
 * - VM_IO | VM_PFNMAP: the [vvar] mapping of every process is one.
 * - shadow stacks (map_shadow_stack(2)): readable, but a remote WRITE must
 *   not overwrite return addresses. Skipped where the CPU has no user
 *   shadow stacks (TCG).
 *
 * "Refused" means: the registration fails with EFAULT, or every local and
 * remote access through the MR fails as other access errors do (rxe: the
 * responder NAKs, IBV_WC_REM_ACCESS_ERR; iWARP: the responder terminates;
 * a local SGE: IBV_WC_LOC_PROT_ERR), the QP goes to error, the memory is
 * unchanged and not one byte of it reaches a peer buffer.
 */
#include "sodp_test.h"
#include <sys/syscall.h>

#ifndef __NR_memfd_secret
#define __NR_memfd_secret	447
#endif
#ifndef __NR_map_shadow_stack
#define __NR_map_shadow_stack	453
#endif

#define WRID_RECV	0x52454356ull
#define WRID_SEND	0x53454e44ull
#define WRID_RDMA	0x52444d41ull

#define CASE_TIMEOUT	300	/* seconds, TCG guest */
#define NPAGES		4
#define SENTINEL	0x5a	/* every byte of the buffers a peer sees */
#define ODP_RW		(SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND)
#define PIN_MODE_PATH	"/sys/module/sodp/parameters/pin_mode"
/* IB_UVERBS_ACCESS_FLUSH_PERSISTENT; rdma-core 44 has no name for it. */
#define ACCESS_FLUSH_PERSISTENT	0x200
#define FETH_RANGE_PERSISTENT	0x02	/* selectivity range, type persistent */

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

/* The first offset where @buf differs from the pattern of @seed. */
#define ASSERT_PATTERN(buf, len, seed) do {				\
	const uint8_t *__b = (const uint8_t *)(buf);			\
	ssize_t __off = sodp_pattern_check(__b, (len), (seed), 0);	\
	if (__off >= 0)							\
		TH_LOG("pattern mismatch at offset %zd: 0x%02x",	\
		       __off, __b[__off]);				\
	ASSERT_EQ(-1, __off);						\
} while (0)

struct vma_ctx {
	struct sodp_dev dev;
	bool dev_open;
	struct sodp_pair pair;
	size_t len;			/* NPAGES pages */
	uint8_t *peer;			/* 2 * len of SENTINEL, plain MR */
	struct ibv_mr *peer_mr;
	uint8_t *mem;			/* the memory under test */
	size_t mem_len;
	bool mem_foreign;		/* not ours to unmap ([vvar]) */
	int secret_fd;
	struct ibv_mr *mr;		/* the MR under test */
	uint64_t seed;			/* of the secret bytes */
	char mode_was[16];		/* pin_mode to restore, "" if kept */
};

static const char *vma_device(void)
{
	const char *name = getenv("SODP_DEVICE");

	return name && *name ? name : NULL;
}

/*
 * Map a secretmem buffer of c->len bytes at @at (MAP_FIXED) or anywhere as
 * c->mem, its bytes written by the CPU (so its pages are faulted in and
 * gone from the direct map). False, with the case skipped, if
 * memfd_secret(2) is not available (CONFIG_SECRETMEM, secretmem.enable).
 */
static bool secret_setup(struct __test_metadata *_metadata,
			 struct vma_ctx *c, void *at)
{
	int flags = MAP_SHARED | (at ? MAP_FIXED : 0);
	void *p;

	c->secret_fd = syscall(__NR_memfd_secret, 0);
	if (c->secret_fd < 0)
		SKIP(return false, "memfd_secret: %s", strerror(errno));
	ASSERT_EQ(0, ftruncate(c->secret_fd, c->len));
	p = mmap(at, c->len, PROT_READ | PROT_WRITE, flags, c->secret_fd, 0);
	ASSERT_NE(MAP_FAILED, p) TH_LOG("mmap secretmem: %s",
					strerror(errno));
	if (at)
		ASSERT_EQ(at, p);
	sodp_pattern_fill(p, c->len, c->seed, 0);
	c->mem = p;
	c->mem_len = c->len;
	return true;
}

static void ctx_setup(struct __test_metadata *_metadata, struct vma_ctx *c)
{
	const char *name = vma_device();

	c->secret_fd = -1;
	c->len = NPAGES * sodp_page_size();
	c->seed = sodp_seed(_metadata->name);
	if (!name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	ASSERT_EQ(0, sodp_dev_open(&c->dev, name));
	c->dev_open = true;
	c->peer = sodp_map_anon(2 * c->len);
	ASSERT_NE(NULL, c->peer);
	memset(c->peer, SENTINEL, 2 * c->len);
	c->peer_mr = sodp_mr_reg(&c->dev, c->peer, 2 * c->len,
				 SODP_ACCESS_RW);
	ASSERT_NE(NULL, c->peer_mr) TH_LOG("peer MR: %s", strerror(errno));
}

static void pin_mode_restore(struct vma_ctx *c)
{
	FILE *f;

	if (!c->mode_was[0])
		return;
	f = fopen(PIN_MODE_PATH, "w");
	if (f) {
		fprintf(f, "%s\n", c->mode_was);
		fclose(f);
	}
	c->mode_was[0] = '\0';
}

static void ctx_teardown(struct vma_ctx *c)
{
	sodp_pair_destroy(&c->pair);
	sodp_mr_dereg(&c->mr);
	sodp_mr_dereg(&c->peer_mr);
	pin_mode_restore(c);
	if (c->mem && !c->mem_foreign)
		munmap(c->mem, c->mem_len);
	if (c->secret_fd >= 0)
		close(c->secret_fd);
	if (c->peer)
		sodp_unmap(c->peer, 2 * c->len);
	if (c->dev_open)
		sodp_dev_close(&c->dev);
}

/* 0 if the device has ODP for the RC operations of the cases. */
static const char *odp_missing(struct vma_ctx *c, bool implicit)
{
	uint32_t bits = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV |
			IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ;

	if (!(c->dev.odp.general_caps & IBV_ODP_SUPPORT))
		return "no ODP";
	if (implicit && !(c->dev.odp.general_caps & IBV_ODP_SUPPORT_IMPLICIT))
		return "no implicit ODP";
	if ((c->dev.odp.per_transport_caps.rc_odp_caps & bits) != bits)
		return "no RC ODP for SEND, RECV, WRITE and READ";
	return NULL;
}

static void connect_fresh(struct __test_metadata *_metadata,
			  struct vma_ctx *c)
{
	sodp_pair_destroy(&c->pair);
	ASSERT_EQ(0, sodp_pair_connect(&c->dev, &c->pair));
}

static void expect_status(struct __test_metadata *_metadata,
			  struct ibv_cq *cq, int tmo, uint64_t wr_id,
			  int status, const char *what)
{
	struct ibv_wc wc;

	ASSERT_EQ(0, sodp_poll_one(cq, &wc, tmo)) TH_LOG("%s", what);
	if ((status >= 0 && (int)wc.status != status) ||
	    (status < 0 && wc.status == IBV_WC_SUCCESS))
		TH_LOG("%s: %s (%d), expected %s", what,
		       ibv_wc_status_str(wc.status), wc.status,
		       status >= 0 ? ibv_wc_status_str(status) : "an error");
	ASSERT_EQ(wr_id, wc.wr_id);
	ASSERT_TRUE(status >= 0 ? (int)wc.status == status :
				  wc.status != IBV_WC_SUCCESS);
}

/*
 * A remote WRITE into or READ of [@va, @va + @len) through @rkey that the
 * responder must refuse, on a fresh connection left in error: see the top
 * comment; the RECV posted beforehand on the requester is flushed.
 */
static void remote_refused(struct __test_metadata *_metadata,
			   struct vma_ctx *c, enum ibv_wr_opcode op,
			   uint64_t va, uint32_t len, uint32_t rkey)
{
	const char *what = op == IBV_WR_RDMA_READ ? "remote READ" :
						    "remote WRITE";
	int tmo = c->dev.timeout_ms;
	uint8_t *rbuf;

	connect_fresh(_metadata, c);
	rbuf = (uint8_t *)c->pair.sync_buf + 1024;
	ASSERT_EQ(0, sodp_post_recv(&c->pair.cli, WRID_RECV, rbuf, 64,
				    c->pair.sync_mr->lkey));
	ASSERT_EQ(0, sodp_post_rdma(&c->pair.cli, op, WRID_RDMA, c->peer,
				    len, c->peer_mr->lkey, va, rkey, 0));
	if (!c->dev.iwarp)
		expect_status(_metadata, c->pair.cli.scq, tmo, WRID_RDMA,
			      IBV_WC_REM_ACCESS_ERR, what);
	else if (op == IBV_WR_RDMA_WRITE)
		/* Not acknowledged on iWARP: the TERMINATE ends the QP. */
		expect_status(_metadata, c->pair.cli.scq, tmo, WRID_RDMA,
			      IBV_WC_SUCCESS, what);
	else
		expect_status(_metadata, c->pair.cli.scq, tmo, WRID_RDMA, -1,
			      what);
	expect_status(_metadata, c->pair.cli.rcq, tmo, WRID_RECV,
		      IBV_WC_WR_FLUSH_ERR, "RECV after the refused access");
	ASSERT_BYTES(c->peer, 2 * c->len, SENTINEL);
}

/* A SEND into a RECV posted at the responder in the MR under test. */
static void send_into_refused(struct __test_metadata *_metadata,
			      struct vma_ctx *c, uint8_t *dst, uint32_t len)
{
	int tmo = c->dev.timeout_ms;

	connect_fresh(_metadata, c);
	ASSERT_EQ(0, sodp_post_recv(&c->pair.srv, WRID_RECV, dst, len,
				    c->mr->lkey));
	ASSERT_EQ(0, sodp_post_send(&c->pair.cli, WRID_SEND, c->peer, len,
				    c->peer_mr->lkey));
	expect_status(_metadata, c->pair.srv.rcq, tmo, WRID_RECV, -1,
		      "RECV into the memory");
	/* On iWARP the SEND completes once TCP took it. */
	if (!c->dev.iwarp)
		expect_status(_metadata, c->pair.cli.scq, tmo, WRID_SEND, -1,
			      "SEND to that RECV");
}

/*
 * A SEND (@op < 0) or an RDMA WRITE from the memory under test, to a peer
 * buffer: IBV_WC_LOC_PROT_ERR and nothing reaches the peer.
 */
static void local_refused(struct __test_metadata *_metadata,
			  struct vma_ctx *c, int op, uint8_t *src,
			  uint32_t len)
{
	uint8_t *rbuf;
	int tmo = c->dev.timeout_ms;

	connect_fresh(_metadata, c);
	rbuf = (uint8_t *)c->pair.sync_buf + 1024;
	ASSERT_EQ(0, sodp_post_recv(&c->pair.cli, WRID_RECV, rbuf, 64,
				    c->pair.sync_mr->lkey));
	if (op < 0) {
		ASSERT_EQ(0, sodp_post_recv(&c->pair.srv, WRID_RECV,
					    c->peer + c->len, c->len,
					    c->peer_mr->lkey));
		ASSERT_EQ(0, sodp_post_send(&c->pair.cli, WRID_RDMA, src, len,
					    c->mr->lkey));
	} else {
		ASSERT_EQ(0, sodp_post_rdma(&c->pair.cli, op, WRID_RDMA, src,
					    len, c->mr->lkey,
					    (uintptr_t)c->peer + c->len,
					    c->peer_mr->rkey, 0));
	}
	expect_status(_metadata, c->pair.cli.scq, tmo, WRID_RDMA,
		      IBV_WC_LOC_PROT_ERR,
		      op < 0 ? "SEND from the memory" :
			       "RDMA WRITE from the memory");
	/* siw flushes the receive queue only at teardown (upstream too). */
	if (!c->dev.iwarp)
		expect_status(_metadata, c->pair.cli.rcq, tmo, WRID_RECV,
			      IBV_WC_WR_FLUSH_ERR, "RECV after the error");
	ASSERT_BYTES(c->peer, 2 * c->len, SENTINEL);
}

/*
 * Every access through c->mr to the secret buffer c->mem is refused and
 * neither changes it nor lets a byte of it out. @local: also as the
 * requester's SGE (c->mr has an lkey for c->mem).
 */
static void all_refused(struct __test_metadata *_metadata, struct vma_ctx *c,
			bool local)
{
	uint64_t va = (uintptr_t)c->mem;
	uint32_t p = sodp_page_size();

	remote_refused(_metadata, c, IBV_WR_RDMA_WRITE, va + 100, 64,
		       c->mr->rkey);
	remote_refused(_metadata, c, IBV_WR_RDMA_READ, va + 100, 2 * p,
		       c->mr->rkey);
	remote_refused(_metadata, c, IBV_WR_RDMA_READ, va + p, p,
		       c->mr->rkey);
	send_into_refused(_metadata, c, c->mem + 5, 1000);
	if (local) {
		local_refused(_metadata, c, -1, c->mem + 5, 3 * p);
		local_refused(_metadata, c, IBV_WR_RDMA_WRITE, c->mem, p);
	}
	sodp_pair_destroy(&c->pair);
	ASSERT_PATTERN(c->mem, c->len, c->seed);
	ASSERT_BYTES(c->peer, 2 * c->len, SENTINEL);
}

/* Register c->mem as c->mr, or expect EFAULT; true if registered. */
static bool reg_or_efault(struct __test_metadata *_metadata,
			  struct vma_ctx *c, int access, const char *what)
{
	c->mr = sodp_mr_reg(&c->dev, c->mem, c->mem_len, access);
	if (c->mr) {
		TH_LOG("%s: registered, every access must fail", what);
		return true;
	}
	if (errno != EFAULT)
		TH_LOG("%s: registration failed with %s, expected EFAULT",
		       what, strerror(errno));
	EXPECT_EQ(EFAULT, errno);
	return false;
}

static int advise(struct ibv_mr *mr, enum ibv_advise_mr_advice advice,
		  uint32_t flags, void *addr, size_t len)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr,
		.length = len,
		.lkey = mr->lkey,
	};

	int ret = ibv_cmd_advise_mr(mr->pd, advice, flags, &sge, 1);

	return ret < 0 ? -ret : ret;
}

FIXTURE(vma) {
	struct vma_ctx c;
};

FIXTURE_SETUP(vma)
{
	ctx_setup(_metadata, &self->c);
}

FIXTURE_TEARDOWN(vma)
{
	ctx_teardown(&self->c);
}

/*
 * An ODP MR over a secretmem buffer: refused at registration (sodp finds
 * the VMA), or else refused at every access.
 */
TEST_F_TIMEOUT(vma, odp_secret, CASE_TIMEOUT)
{
	struct vma_ctx *c = &self->c;
	const char *why = odp_missing(c, false);

	if (why)
		SKIP(return, "%s", why);
	if (!secret_setup(_metadata, c, NULL))
		return;
	if (reg_or_efault(_metadata, c, ODP_RW, "ODP MR over secretmem"))
		all_refused(_metadata, c, true);
}

/*
 * The VMA under an ODP MR is replaced by secretmem after traffic warmed
 * the mirror (munmap + mmap at the same address: the invalidation clears
 * the mirror, the next fault must vet the new VMA). Then every access,
 * PREFETCH and PREFETCH_WRITE are refused (EFAULT), and a
 * PREFETCH_NO_FAULT does not make the pages reachable either.
 */
TEST_F_TIMEOUT(vma, odp_secret_replaced, CASE_TIMEOUT)
{
	struct vma_ctx *c = &self->c;
	const char *why = odp_missing(c, false);
	uint32_t p = sodp_page_size();
	struct ibv_wc wc;
	int ret;

	if (why)
		SKIP(return, "%s", why);
	c->mem = sodp_map_anon(c->len);
	ASSERT_NE(NULL, c->mem);
	c->mem_len = c->len;
	memset(c->mem, 0, c->len);
	c->mr = sodp_mr_reg(&c->dev, c->mem, c->len, ODP_RW);
	ASSERT_NE(NULL, c->mr) TH_LOG("ODP MR: %s", strerror(errno));

	/* Warm: a READ of every page through the mirror works. */
	connect_fresh(_metadata, c);
	ASSERT_EQ(0, sodp_post_rdma(&c->pair.cli, IBV_WR_RDMA_READ, WRID_RDMA,
				    c->peer, c->len, c->peer_mr->lkey,
				    (uintptr_t)c->mem, c->mr->rkey, 0));
	ASSERT_EQ(0, sodp_poll_one(c->pair.cli.scq, &wc, c->dev.timeout_ms));
	ASSERT_EQ(IBV_WC_SUCCESS, (int)wc.status);
	ASSERT_BYTES(c->peer, c->len, 0);
	memset(c->peer, SENTINEL, 2 * c->len);
	sodp_pair_destroy(&c->pair);

	if (!secret_setup(_metadata, c, c->mem))
		return;

	all_refused(_metadata, c, true);

	ret = advise(c->mr, IBV_ADVISE_MR_ADVICE_PREFETCH,
		     IBV_ADVISE_MR_FLAG_FLUSH, c->mem, c->len);
	EXPECT_EQ(EFAULT, ret) TH_LOG("PREFETCH: %s", strerror(ret));
	ret = advise(c->mr, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
		     IBV_ADVISE_MR_FLAG_FLUSH, c->mem, c->len);
	EXPECT_EQ(EFAULT, ret) TH_LOG("PREFETCH_WRITE: %s", strerror(ret));
	/* A snapshot skips memory sodp refuses, as it skips holes. */
	ret = advise(c->mr, IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT,
		     IBV_ADVISE_MR_FLAG_FLUSH, c->mem, c->len);
	if (ret)
		TH_LOG("PREFETCH_NO_FAULT: %s", strerror(ret));
	EXPECT_TRUE(ret == 0 || ret == EFAULT);
	remote_refused(_metadata, c, IBV_WR_RDMA_READ, (uintptr_t)c->mem + p,
		       p, c->mr->rkey);
	ASSERT_PATTERN(c->mem, c->len, c->seed);
}

/* The implicit ODP MR reaches secretmem too: refused the same way. */
TEST_F_TIMEOUT(vma, implicit_secret, CASE_TIMEOUT)
{
	struct vma_ctx *c = &self->c;
	const char *why = odp_missing(c, true);

	if (why)
		SKIP(return, "%s", why);
	if (!secret_setup(_metadata, c, NULL))
		return;
	c->mr = sodp_mr_reg(&c->dev, NULL, SIZE_MAX, ODP_RW);
	ASSERT_NE(NULL, c->mr) TH_LOG("implicit MR: %s", strerror(errno));
	all_refused(_metadata, c, true);
}

/*
 * A plain MR over secretmem under each sodp.pin_mode: pinning refuses it
 * (-EFAULT), pin_mode=auto retries through sodp, which must refuse it as
 * well, and pin_mode=all goes to sodp at once. Registration fails with
 * EFAULT in every mode; if it does not, every access must still fail.
 */
TEST_F_TIMEOUT(vma, plain_secret, CASE_TIMEOUT)
{
	static const char * const modes[] = { "pin", "auto", "all" };
	struct vma_ctx *c = &self->c;
	enum sodp_pin_mode mode = sodp_pin_mode();
	unsigned int i, n = 3;
	char what[64];
	FILE *f;

	ASSERT_NE(SODP_PIN_UNKNOWN, (int)mode);
	if (mode == SODP_PIN_ABSENT)
		n = 1;		/* a stock driver: it only pins */
	if (!secret_setup(_metadata, c, NULL))
		return;
	if (n > 1)
		snprintf(c->mode_was, sizeof(c->mode_was), "%s",
			 sodp_pin_mode_str(mode));
	for (i = 0; i < n; i++) {
		if (n > 1) {
			f = fopen(PIN_MODE_PATH, "w");
			ASSERT_NE(NULL, f) TH_LOG("%s: %s", PIN_MODE_PATH,
						  strerror(errno));
			fprintf(f, "%s\n", modes[i]);
			ASSERT_EQ(0, fclose(f));
		}
		snprintf(what, sizeof(what), "plain MR, pin_mode=%s",
			 modes[i]);
		if (reg_or_efault(_metadata, c, SODP_ACCESS_RW, what)) {
			all_refused(_metadata, c, true);
			ASSERT_EQ(0, sodp_mr_dereg(&c->mr));
		}
	}
}

/*
 * VM_IO | VM_PFNMAP: the [vvar] pages of the vDSO. GUP refuses them;
 * an ODP MR is refused at registration or its remote READ fails, and
 * a plain MR (pinning refuses with EFAULT, auto must not fall back) fails.
 */
TEST_F_TIMEOUT(vma, pfnmap_vvar, CASE_TIMEOUT)
{
	struct vma_ctx *c = &self->c;
	unsigned long start = 0, end = 0, s, e;
	char line[512];
	FILE *f;

	f = fopen("/proc/self/maps", "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "[vvar]") &&
		    sscanf(line, "%lx-%lx", &s, &e) == 2) {
			start = s;
			end = e;
			break;
		}
	}
	fclose(f);
	if (!start)
		SKIP(return, "no [vvar] mapping");
	c->mem = (uint8_t *)start;
	c->mem_len = end - start;
	c->mem_foreign = true;

	c->mr = sodp_mr_reg(&c->dev, c->mem, c->mem_len,
			    IBV_ACCESS_REMOTE_READ);
	ASSERT_EQ(NULL, c->mr) TH_LOG("plain MR over [vvar] registered");
	ASSERT_EQ(EFAULT, errno) TH_LOG("plain MR: %s", strerror(errno));

	if (!odp_missing(c, false) &&
	    reg_or_efault(_metadata, c, IBV_ACCESS_REMOTE_READ |
			  IBV_ACCESS_ON_DEMAND, "ODP MR over [vvar]")) {
		remote_refused(_metadata, c, IBV_WR_RDMA_READ,
			       (uintptr_t)c->mem, 64, c->mr->rkey);
		ASSERT_EQ(0, sodp_mr_dereg(&c->mr));
	}
}

/*
 * A shadow stack is readable but must not be written through an MR
 * (GUP refuses writes without FOLL_FORCE): a writable ODP registration
 * is refused, or a remote WRITE into it fails and changes nothing.
 */
TEST_F_TIMEOUT(vma, shadow_stack_write, CASE_TIMEOUT)
{
	struct vma_ctx *c = &self->c;
	const char *why = odp_missing(c, false);
	uint8_t *copy;
	long p;

	if (why)
		SKIP(return, "%s", why);
	p = syscall(__NR_map_shadow_stack, 0, c->len, 0);
	/* EOPNOTSUPP: the CPU has no user shadow stacks (TCG). */
	if (p == -1)
		SKIP(return, "map_shadow_stack: %s", strerror(errno));
	c->mem = (uint8_t *)p;
	c->mem_len = c->len;
	copy = malloc(c->len);
	ASSERT_NE(NULL, copy);
	memcpy(copy, c->mem, c->len);

	if (reg_or_efault(_metadata, c, ODP_RW, "ODP MR over a shadow stack"))
		remote_refused(_metadata, c, IBV_WR_RDMA_WRITE,
			       (uintptr_t)c->mem + 64, 64, c->mr->rkey);
	sodp_pair_destroy(&c->pair);
	EXPECT_EQ(0, memcmp(copy, c->mem, c->len));
	free(copy);
}

/* The device's hw counter @name (port 1), -1 if there is none. */
static long hw_counter(struct vma_ctx *c, const char *name)
{
	char path[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path),
		 "/sys/class/infiniband/%s/ports/1/hw_counters/%s",
		 c->dev.name, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/*
 * A FLUSH with persistent placement into an ODP MR over DRAM: upstream rxe
 * refuses an MR with IB_ACCESS_FLUSH_PERSISTENT unless its pages are
 * persistent memory, so a peer is never told that DRAM is persistent.
 * Through sodp the MR registers (its pages are only known at fault time),
 * so the FLUSH itself must fail: the responder NAKs it and its QP goes to
 * the error state, instead of acknowledging it and staying in RTS. The
 * FLUSH is injected from the veth peer (rdma-core 44 cannot post one);
 * the responder's sent_pkts counter tells when it has answered.
 */
TEST_F_TIMEOUT(vma, flush_persistent_dram, CASE_TIMEOUT)
{
	struct vma_ctx *c = &self->c;
	const char *why = odp_missing(c, false);
	struct ibv_qp_init_attr init;
	struct ibv_qp_attr attr = {};
	long sent, deadline;
	int ret;

	if (c->dev.iwarp)
		SKIP(return, "%s: iWARP has no FLUSH", c->dev.name);
	if (why)
		SKIP(return, "%s", why);
	c->mem = sodp_map_anon(c->len);
	ASSERT_NE(NULL, c->mem);
	c->mem_len = c->len;
	sodp_pattern_fill(c->mem, c->len, c->seed, 0);
	c->mr = sodp_mr_reg(&c->dev, c->mem, c->len,
			    ODP_RW | ACCESS_FLUSH_PERSISTENT);
	if (!c->mr) {
		TH_LOG("ODP MR with FLUSH_PERSISTENT over DRAM refused: %s",
		       strerror(errno));
		return;
	}

	connect_fresh(_metadata, c);
	attr.qp_access_flags = IBV_ACCESS_REMOTE_WRITE |
			       IBV_ACCESS_REMOTE_READ |
			       IBV_ACCESS_REMOTE_ATOMIC |
			       ACCESS_FLUSH_PERSISTENT;
	ASSERT_EQ(0, ibv_modify_qp(c->pair.srv.qp, &attr,
				   IBV_QP_ACCESS_FLAGS));
	/* The PSN the server expects next: the client's next request's. */
	ASSERT_EQ(0, ibv_query_qp(c->pair.cli.qp, &attr, IBV_QP_SQ_PSN,
				  &init));
	sent = hw_counter(c, "sent_pkts");
	ASSERT_LE(0, sent);
	ret = sodp_inject_flush_request(&c->pair, attr.sq_psn,
					FETH_RANGE_PERSISTENT,
					(uintptr_t)c->mem, c->mr->rkey,
					c->len);
	if (ret == -ENODEV)
		SKIP(return, "%s: no veth peer to send from", c->dev.ifname);
	ASSERT_EQ(0, ret);

	/* Bounded wait for the answer (ACK or NAK), not a speed check. */
	deadline = c->dev.timeout_ms;
	while (hw_counter(c, "sent_pkts") <= sent && deadline-- > 0)
		usleep(1000);
	ASSERT_LT(sent, hw_counter(c, "sent_pkts"))
		TH_LOG("%s did not answer the FLUSH", c->dev.name);
	ASSERT_EQ(0, ibv_query_qp(c->pair.srv.qp, &attr, IBV_QP_STATE,
				  &init));
	if (attr.qp_state != IBV_QPS_ERR)
		TH_LOG("FLUSH(persistent) of DRAM accepted: server QP state %d",
		       attr.qp_state);
	ASSERT_EQ(IBV_QPS_ERR, (int)attr.qp_state);
	ASSERT_PATTERN(c->mem, c->len, c->seed);
}

TEST_HARNESS_MAIN
