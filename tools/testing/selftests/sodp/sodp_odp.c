// SPDX-License-Identifier: GPL-2.0
/*
 * On-Demand Paging tests for the soft-RDMA devices (rxe, siw) served by
 * sodp: ODP registration without pinning or memlock charge, every opcode
 * into cold and warm ODP memory on either side of the connection, the mm
 * changing the memory under a live MR (munmap/remap, MADV_DONTNEED, fork,
 * mprotect, migration, compaction), huge pages, shared file mappings, the
 * pinned fast-path cache being a lease, implicit ODP and prefetch, bad
 * input, and the counters that make all of it observable.
 *
 * Every case is parametrised by the device under test (SODP_DEVICE) and is
 * skipped with "<dev> has no ODP ..." when ibv_query_device_ex() does not
 * advertise the ODP capability bits the case needs, so the same suite runs
 * on every device that advertises ODP.
 *
 * Capability bits a case needs (per transport, RC unless noted): the
 * buffer the requester reads or writes locally needs SEND plus the bit of
 * the operation (WRITE, READ, ATOMIC); the responder's buffer needs RECV,
 * SRQ_RECV, WRITE, READ or ATOMIC.
 *
 * Counters: the sodp core's global totals in debugfs (SODP_DEBUGFS) and
 * the per-MR ones through "rdma statistic show mr". Cases that count
 * global totals assume that no other process uses ODP meanwhile.
 *
 * Cases that find a bug fail; they are not marked expected failures.
 *
 * Environment: SODP_DEVICE (required), SODP_ADDR, SODP_TIMEOUT_MS,
 * SODP_TMPFS_DIR, SODP_EXT4_DIR. Run as root (debugfs, the rdma tool's
 * MR keys, nr_hugepages, compact_memory, module parameters); fake NUMA
 * nodes (numa=fake=2) for the migration cases.
 */
#include "sodp_test.h"
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/mempolicy.h>

#define PAGE_SZ		4096UL
#define HPAGE_SZ	(2UL << 20)
#define MIB		(1024UL * 1024)
#define GIB		(1024UL * MIB)

#define WRID_SEND	0x53454e44ull
#define WRID_RECV	0x52454356ull
#define WRID_RDMA	0x52444d41ull
#define WRID_ATOMIC	0x41544f4dull

#define CASE_TIMEOUT	120	/* seconds per case, TCG guest */
#define SLACK		64	/* extra RECV room / guard bytes */
#define SENT_SRC	0xa5	/* around the data in a source buffer */
#define SENT_DST	0x5c	/* a warm destination before the transfer */
#define SENT_LOCAL	0xc5	/* other local (plain) buffers */

#define ODP_RC_USED	(IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV | \
			 IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ)
#define ODP_RW		(SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND)

#define NSLOT		8	/* mappings and MRs a case may leave behind */

#define CACHE_IDLE_PATH	"/sys/module/sodp/parameters/cache_idle_ms"
#define DRAIN_SLACK_MS	1000	/* workqueue latency on a loaded TCG guest */

/* The first offset where @buf differs from the pattern slice. */
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

/* The first offset where two buffers differ. */
#define ASSERT_SAME(a, b, len) do {					\
	const uint8_t *__a = (const uint8_t *)(a);			\
	const uint8_t *__b = (const uint8_t *)(b);			\
	size_t __i, __len = (len);					\
	for (__i = 0; __i < __len && __a[__i] == __b[__i]; __i++)	\
		;							\
	if (__i < __len)						\
		TH_LOG("differ at offset %zu: 0x%02x vs 0x%02x", __i,	\
		       __a[__i], __b[__i]);				\
	ASSERT_EQ(__len, __i);						\
} while (0)

/*
 * Everything a case sets up; the teardown releases whatever is set, in
 * dependency order, also after a failed assertion.
 */
struct odp_ctx {
	struct sodp_dev dev;
	bool dev_open;
	struct sodp_pair pair;
	struct sodp_pair xpair;		/* a second pair where needed */
	struct ibv_srq *srq;		/* server QP receives from it */
	struct sodp_ud ud;
	uint64_t seed;
	void *map[NSLOT];
	size_t map_len[NSLOT];
	int fd[NSLOT];
	struct ibv_mr *mr[NSLOT];
	long nr_hugepages;		/* to restore; -1: untouched */
	struct {
		const char *name;	/* sodp module parameter */
		long old;		/* value to restore */
	} param[2];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000,
	};

	nanosleep(&ts, NULL);
}

static const char *odp_device(void)
{
	const char *name = getenv("SODP_DEVICE");

	return name && *name ? name : NULL;
}

static const char *odp_bit_names(uint32_t bits, char *buf, size_t len)
{
	static const char * const names[] = {
		"SEND", "RECV", "WRITE", "READ", "ATOMIC", "SRQ_RECV",
	};
	size_t n = 0;
	unsigned int i;

	buf[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(names); i++)
		if (bits & (1u << i))
			n += snprintf(buf + n, len > n ? len - n : 0, "%s%s",
				      n ? "|" : "", names[i]);
	return buf;
}

/*
 * Why @name cannot run a case needing @bits of ODP on @qpt (and implicit
 * ODP if @implicit), or NULL if it can. The reason is in a static buffer.
 */
static const char *odp_missing(const char *name,
			       const struct ibv_odp_caps *odp,
			       enum ibv_qp_type qpt, uint32_t bits,
			       bool implicit)
{
	uint32_t have = qpt == IBV_QPT_UD ?
			odp->per_transport_caps.ud_odp_caps :
			odp->per_transport_caps.rc_odp_caps;
	static char why[160];
	size_t len = sizeof(why);
	char names[64];

	if (!(odp->general_caps & IBV_ODP_SUPPORT)) {
		snprintf(why, len, "%s has no ODP", name);
		return why;
	}
	if (implicit && !(odp->general_caps & IBV_ODP_SUPPORT_IMPLICIT)) {
		snprintf(why, len, "%s has no implicit ODP", name);
		return why;
	}
	if ((have & bits) != bits) {
		snprintf(why, len, "%s has no ODP for %s %s", name,
			 qpt == IBV_QPT_UD ? "UD" : "RC",
			 odp_bit_names(bits & ~have, names, sizeof(names)));
		return why;
	}
	return NULL;
}

/* odp_missing() for the device of @c. */
static const char *odp_skip(struct odp_ctx *c, enum ibv_qp_type qpt,
			    uint32_t bits, bool implicit)
{
	return odp_missing(c->dev.name, &c->dev.odp, qpt, bits, implicit);
}

static void ctx_setup(struct __test_metadata *_metadata, struct odp_ctx *c)
{
	const char *name = odp_device();
	int i;

	c->nr_hugepages = -1;
	for (i = 0; i < NSLOT; i++)
		c->fd[i] = -1;
	if (!name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	if (sodp_page_size() != (long)PAGE_SZ)
		SKIP(return, "page size %ld: the cases assume 4 KiB pages",
		     sodp_page_size());
	ASSERT_EQ(0, sodp_dev_open(&c->dev, name));
	c->dev_open = true;
	c->seed = sodp_seed(_metadata->name);
}

static void write_long(const char *path, long val)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return;
	fprintf(f, "%ld\n", val);
	fclose(f);
}

static long read_long(const char *path)
{
	long val = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &val) != 1)
		val = -1;
	fclose(f);
	return val;
}

/* Release mapping/MR slot @i. */
static void ctx_slot_release(struct odp_ctx *c, int i)
{
	sodp_mr_dereg(&c->mr[i]);
	sodp_unmap(c->map[i], c->map_len[i]);
	c->map[i] = NULL;
	if (c->fd[i] >= 0)
		close(c->fd[i]);
	c->fd[i] = -1;
}

static void ctx_teardown(struct odp_ctx *c)
{
	int i;

	for (i = 0; i < NSLOT; i++)
		sodp_mr_dereg(&c->mr[i]);
	sodp_pair_destroy(&c->pair);
	sodp_pair_destroy(&c->xpair);
	sodp_ud_destroy(&c->ud);
	if (c->srq)
		ibv_destroy_srq(c->srq);
	c->srq = NULL;
	for (i = 0; i < NSLOT; i++)
		ctx_slot_release(c, i);
	if (c->nr_hugepages >= 0)
		write_long("/proc/sys/vm/nr_hugepages", c->nr_hugepages);
	for (i = 0; i < 2; i++)
		if (c->param[i].name)
			write_long(c->param[i].name, c->param[i].old);
	if (c->dev_open)
		sodp_dev_close(&c->dev);
	c->dev_open = false;
}

/*
 * Set sodp module parameter @name (a path under /sys/module/sodp/
 * parameters) to @val until the teardown. Parameters read at
 * registration (cache_pages) apply to MRs registered afterwards.
 */
static void ctx_param(struct __test_metadata *_metadata, struct odp_ctx *c,
		      const char *name, long val)
{
	int i = c->param[0].name ? 1 : 0;

	ASSERT_EQ(NULL, c->param[i].name);
	c->param[i].old = read_long(name);
	ASSERT_LE(0, c->param[i].old) TH_LOG("no %s", name);
	c->param[i].name = name;
	write_long(name, val);
	ASSERT_EQ(val, read_long(name));
}

#define CACHE_PAGES_PATH	"/sys/module/sodp/parameters/cache_pages"
#define FAULT_AROUND_PATH	"/sys/module/sodp/parameters/fault_around_pages"

/* (Re)connect the RC pair, the server on c->srq if there is one. */
static void ctx_connect(struct __test_metadata *_metadata, struct odp_ctx *c)
{
	struct sodp_pair_opts opts = { .srv_srq = c->srq };

	sodp_pair_destroy(&c->pair);
	ASSERT_EQ(0, sodp_pair_connect_opts(&c->dev, &c->pair, &opts));
}

/*
 * A private anonymous mapping of @len bytes in slot @i. @fill >= 0: every
 * byte set by the CPU (warm); < 0: never touched (cold).
 */
static uint8_t *slot_anon(struct __test_metadata *_metadata,
			  struct odp_ctx *c, int i, size_t len, int fill)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	ASSERT_NE(MAP_FAILED, p) TH_LOG("mmap(%zu): %s", len, strerror(errno));
	c->map[i] = p;
	c->map_len[i] = len;
	if (fill >= 0)
		memset(p, fill, len);
	return p;
}

/*
 * A MAP_SHARED mapping of a memfd holding @image in slot @i: the pages are
 * in the page cache but not in this process's page tables, so the first
 * access through an ODP MR must fault them in, and their content is known.
 */
static uint8_t *slot_memfd(struct __test_metadata *_metadata,
			   struct odp_ctx *c, int i, size_t len,
			   const void *image)
{
	void *p;

	c->fd[i] = memfd_create("sodp_odp", MFD_CLOEXEC);
	ASSERT_LE(0, c->fd[i]);
	ASSERT_EQ((ssize_t)len, pwrite(c->fd[i], image, len, 0));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd[i], 0);
	ASSERT_NE(MAP_FAILED, p);
	c->map[i] = p;
	c->map_len[i] = len;
	return p;
}

static struct ibv_mr *slot_reg(struct __test_metadata *_metadata,
			       struct odp_ctx *c, int i, void *addr,
			       size_t len, int access)
{
	c->mr[i] = sodp_mr_reg(&c->dev, addr, len, access);
	if (!c->mr[i])
		TH_LOG("ibv_reg_mr(%p, %#zx, %#x): %s", addr, len, access,
		       strerror(errno));
	ASSERT_NE(NULL, c->mr[i]);
	return c->mr[i];
}

/*
 * Wait for the next completion on @cq and check it. @opcode < 0 skips the
 * opcode (undefined in error completions), @byte_len < 0 the length.
 */
static void expect_wc_out(struct __test_metadata *_metadata,
			  struct ibv_cq *cq, int timeout_ms, uint64_t wr_id,
			  enum ibv_wc_status status, int opcode,
			  int64_t byte_len, struct ibv_wc *out)
{
	struct ibv_wc wc;

	ASSERT_EQ(0, sodp_poll_one(cq, &wc, timeout_ms));
	if (out)
		*out = wc;
	if (wc.status != status || wc.wr_id != wr_id)
		TH_LOG("wr_id %#llx status %s (%d), expected %#llx %s (%d)",
		       (unsigned long long)wc.wr_id,
		       ibv_wc_status_str(wc.status), wc.status,
		       (unsigned long long)wr_id, ibv_wc_status_str(status),
		       status);
	ASSERT_EQ(status, wc.status);
	ASSERT_EQ(wr_id, wc.wr_id);
	if (opcode >= 0)
		ASSERT_EQ(opcode, (int)wc.opcode);
	if (byte_len >= 0)
		ASSERT_EQ(byte_len, (int64_t)wc.byte_len);
}

static void expect_wc(struct __test_metadata *_metadata, struct ibv_cq *cq,
		      int timeout_ms, uint64_t wr_id,
		      enum ibv_wc_status status, int opcode, int64_t byte_len)
{
	expect_wc_out(_metadata, cq, timeout_ms, wr_id, status, opcode,
		      byte_len, NULL);
}

/* [0, off) and [off + len, map_len) hold @fill, [off, off + len) data. */
static void expect_region(struct __test_metadata *_metadata,
			  const uint8_t *map, size_t map_len, size_t off,
			  size_t len, uint64_t seed, size_t pos, uint8_t fill)
{
	ASSERT_BYTES(map, off, fill);
	ASSERT_PATTERN(map + off, len, seed, pos);
	ASSERT_BYTES(map + off + len, map_len - off - len, fill);
}

/* A successful RDMA WRITE, placed at the responder when this returns. */
static void rdma_write(struct __test_metadata *_metadata, struct odp_ctx *c,
		       void *src, size_t len, uint32_t lkey, uint64_t raddr,
		       uint32_t rkey)
{
	ASSERT_EQ(0, sodp_post_rdma(&c->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_RDMA, src, len, lkey, raddr, rkey,
				    0));
	expect_wc(_metadata, c->pair.cli.scq, c->dev.timeout_ms, WRID_RDMA,
		  IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, len);
	ASSERT_EQ(0, sodp_pair_sync(&c->pair));
}

/* A successful RDMA READ. */
static void rdma_read(struct __test_metadata *_metadata, struct odp_ctx *c,
		      void *dst, size_t len, uint32_t lkey, uint64_t raddr,
		      uint32_t rkey)
{
	ASSERT_EQ(0, sodp_post_rdma(&c->pair.cli, IBV_WR_RDMA_READ,
				    WRID_RDMA, dst, len, lkey, raddr, rkey,
				    0));
	expect_wc(_metadata, c->pair.cli.scq, c->dev.timeout_ms, WRID_RDMA,
		  IBV_WC_SUCCESS, IBV_WC_RDMA_READ, len);
}

/*
 * An RDMA WRITE, READ or atomic (8 bytes into @local) of @len bytes that
 * the responder must refuse, on a
 * fresh connection that is left in the error state. What the requester
 * sees, as in sodp_basic's bad_write():
 * - RoCE (rxe): the responder NAKs with a remote access error, the work
 *   request completes with IBV_WC_REM_ACCESS_ERR and the QP goes to error.
 * - iWARP (siw): a WRITE is not acknowledged and completes with SUCCESS
 *   once sent; the responder's TERMINATE closes the connection. A READ
 *   completes with an error status.
 * Either way a RECV posted beforehand is flushed, which proves the QP went
 * to error. A READ refused at its first byte places nothing in @local; one
 * that fails part way may have placed the responses before the failure
 * (the local buffer is undefined after an error completion).
 */
static void rdma_refused(struct __test_metadata *_metadata, struct odp_ctx *c,
			 enum ibv_wr_opcode opcode, void *local, size_t len,
			 uint32_t lkey, uint64_t raddr, uint32_t rkey)
{
	uint8_t *rbuf = (uint8_t *)c->pair.sync_buf + 1024;
	int tmo = c->dev.timeout_ms;
	struct ibv_wc wc;

	ctx_connect(_metadata, c);
	ASSERT_EQ(0, sodp_post_recv(&c->pair.cli, WRID_RECV, rbuf, SLACK,
				    c->pair.sync_mr->lkey));
	if (opcode == IBV_WR_ATOMIC_FETCH_AND_ADD ||
	    opcode == IBV_WR_ATOMIC_CMP_AND_SWP) {
		ASSERT_EQ(0, sodp_post_atomic(&c->pair.cli, opcode, WRID_RDMA,
					      (uint64_t *)local, lkey, raddr,
					      rkey, 1, 2));
	} else {
		ASSERT_EQ(0, sodp_post_rdma(&c->pair.cli, opcode, WRID_RDMA,
					    local, len, lkey, raddr, rkey, 0));
	}
	if (!c->dev.iwarp) {
		expect_wc(_metadata, c->pair.cli.scq, tmo, WRID_RDMA,
			  IBV_WC_REM_ACCESS_ERR, -1, -1);
	} else if (opcode == IBV_WR_RDMA_WRITE) {
		expect_wc(_metadata, c->pair.cli.scq, tmo, WRID_RDMA,
			  IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, len);
	} else {
		ASSERT_EQ(0, sodp_poll_one(c->pair.cli.scq, &wc, tmo));
		ASSERT_EQ(WRID_RDMA, wc.wr_id);
		ASSERT_NE(IBV_WC_SUCCESS, (int)wc.status);
	}
	expect_wc(_metadata, c->pair.cli.rcq, tmo, WRID_RECV,
		  IBV_WC_WR_FLUSH_ERR, -1, -1);
}

static int64_t dbg_get(struct __test_metadata *_metadata, const char *name)
{
	int64_t val = -1;

	ASSERT_EQ(0, sodp_debugfs_get(name, &val));
	return val;
}

static void mr_stats(struct __test_metadata *_metadata, struct odp_ctx *c,
		     struct ibv_mr *mr, struct sodp_mr_stats *st)
{
	ASSERT_EQ(0, sodp_mr_stats_get(c->dev.name, mr->lkey, st));
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

/* A "Key:   N kB" line of @path, in kB; -1 if there is none. */
static long kb_field(const char *path, const char *key)
{
	size_t klen = strlen(key);
	char line[256];
	long val = -1;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			val = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

static uint64_t round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

FIXTURE(odp) {
	struct odp_ctx c;
};

FIXTURE_SETUP(odp)
{
	ctx_setup(_metadata, &self->c);
}

FIXTURE_TEARDOWN(odp)
{
	ctx_teardown(&self->c);
}

/*
 * The ODP capabilities are consistent: without IBV_ODP_SUPPORT no
 * per-transport bit or IMPLICIT is set and the kernel refuses
 * IBV_ACCESS_ON_DEMAND (EOPNOTSUPP); with it, the RC bits the suite uses
 * (SEND, RECV, WRITE, READ) are all set, ATOMIC only with atomic support,
 * no UD bit on iWARP, and an ODP registration works. rxe advertises exactly
 * RC SEND|RECV|WRITE|READ|ATOMIC|SRQ_RECV, UD SEND|RECV|SRQ_RECV, IMPLICIT.
 */
TEST_F(odp, caps)
{
	struct odp_ctx *c = &self->c;
	const struct ibv_odp_caps *odp = &c->dev.odp;
	uint32_t rc = odp->per_transport_caps.rc_odp_caps;
	uint32_t uc = odp->per_transport_caps.uc_odp_caps;
	uint32_t ud = odp->per_transport_caps.ud_odp_caps;
	char rcs[64], uds[64];
	struct ibv_mr *mr;
	uint8_t *p;
	int err;

	TH_LOG("%s: general %#llx rc %s ud %s uc %#x", c->dev.name,
	       (unsigned long long)odp->general_caps,
	       odp_bit_names(rc, rcs, sizeof(rcs)),
	       odp_bit_names(ud, uds, sizeof(uds)), uc);
	p = slot_anon(_metadata, c, 0, PAGE_SZ, 0);

	if (!(odp->general_caps & IBV_ODP_SUPPORT)) {
		ASSERT_EQ(0ull, odp->general_caps & IBV_ODP_SUPPORT_IMPLICIT);
		ASSERT_EQ(0u, rc);
		ASSERT_EQ(0u, uc);
		ASSERT_EQ(0u, ud);
		mr = sodp_mr_reg(&c->dev, p, PAGE_SZ, ODP_RW);
		err = errno;
		c->mr[0] = mr;
		ASSERT_EQ(NULL, mr);
		ASSERT_EQ(EOPNOTSUPP, err);
		return;
	}

	ASSERT_EQ((uint32_t)ODP_RC_USED, rc & ODP_RC_USED);
	if (rc & IBV_ODP_SUPPORT_ATOMIC)
		ASSERT_NE(IBV_ATOMIC_NONE, (int)c->dev.attr.atomic_cap);
	if (c->dev.iwarp)
		ASSERT_EQ(0u, ud);
	slot_reg(_metadata, c, 0, p, PAGE_SZ, ODP_RW);
	if (odp->general_caps & IBV_ODP_SUPPORT_IMPLICIT)
		slot_reg(_metadata, c, 1, NULL, SIZE_MAX, ODP_RW);

	if (!strncmp(c->dev.name, "rxe", 3)) {
		ASSERT_EQ((uint64_t)(IBV_ODP_SUPPORT | IBV_ODP_SUPPORT_IMPLICIT),
			  odp->general_caps);
		ASSERT_EQ((uint32_t)(IBV_ODP_SUPPORT_SEND |
				     IBV_ODP_SUPPORT_RECV |
				     IBV_ODP_SUPPORT_WRITE |
				     IBV_ODP_SUPPORT_READ |
				     IBV_ODP_SUPPORT_ATOMIC |
				     IBV_ODP_SUPPORT_SRQ_RECV), rc);
		ASSERT_EQ((uint32_t)(IBV_ODP_SUPPORT_SEND |
				     IBV_ODP_SUPPORT_RECV |
				     IBV_ODP_SUPPORT_SRQ_RECV), ud);
		ASSERT_EQ(0u, uc);
	}
}

/* ---- Opcodes into cold and warm ODP memory ---------------------------- */

enum xop {
	XOP_SEND,	/* RC SEND into a posted RECV */
	XOP_SRQ,	/* RC SEND into a RECV posted on an SRQ */
	XOP_WRITE,	/* RDMA WRITE */
	XOP_READ,	/* RDMA READ */
	XOP_UD,		/* UD SEND/RECV */
};

enum side {
	SIDE_LOCAL,	/* the requester's SGE is in the ODP MR */
	SIDE_REMOTE,	/* the responder's buffer is in the ODP MR */
};

/* The ODP capability bits an operation needs on one side, see the top. */
static uint32_t xop_bits(enum xop op, enum side side)
{
	static const uint32_t local[] = {
		[XOP_SEND] = IBV_ODP_SUPPORT_SEND,
		[XOP_SRQ] = IBV_ODP_SUPPORT_SEND,
		[XOP_WRITE] = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_WRITE,
		[XOP_READ] = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_READ,
		[XOP_UD] = IBV_ODP_SUPPORT_SEND,
	};
	static const uint32_t remote[] = {
		[XOP_SEND] = IBV_ODP_SUPPORT_RECV,
		[XOP_SRQ] = IBV_ODP_SUPPORT_SRQ_RECV,
		[XOP_WRITE] = IBV_ODP_SUPPORT_WRITE,
		[XOP_READ] = IBV_ODP_SUPPORT_READ,
		[XOP_UD] = IBV_ODP_SUPPORT_RECV,
	};

	return side == SIDE_LOCAL ? local[op] : remote[op];
}

/*
 * One transfer between a source and a destination buffer, one of which is
 * in an ODP MR. The data sits at @off in mappings of @map_len bytes; each
 * MR covers its whole mapping, so "outside the data" is inside the MR.
 */
struct xfer {
	enum xop op;
	enum side side;
	bool cold;
	size_t size;
	size_t off;
	size_t map_len;
	bool src_odp;
	uint8_t *src;
	uint8_t *dst;
	uint8_t dst_fill;	/* dst outside the data: 0 if cold */
	struct ibv_mr *smr;
	struct ibv_mr *dmr;
};

FIXTURE(odp_xfer) {
	struct odp_ctx c;
};

FIXTURE_VARIANT(odp_xfer) {
	size_t size;
	size_t off;
	bool cold;	/* the ODP buffer was never touched by the CPU */
};

/* A single byte, the last one of a page. */
FIXTURE_VARIANT_ADD(odp_xfer, byte_cold) {
	.size = 1,
	.off = 4095,
	.cold = true,
};

FIXTURE_VARIANT_ADD(odp_xfer, byte_warm) {
	.size = 1,
	.off = 4095,
	.cold = false,
};

/* One page's worth of bytes, unaligned: it spans two pages. */
FIXTURE_VARIANT_ADD(odp_xfer, page_cold) {
	.size = 4096,
	.off = 4093,
	.cold = true,
};

FIXTURE_VARIANT_ADD(odp_xfer, page_warm) {
	.size = 4096,
	.off = 4093,
	.cold = false,
};

/* 1 MiB + 3 bytes, unaligned at both ends: 258 pages. */
FIXTURE_VARIANT_ADD(odp_xfer, mib_cold) {
	.size = (1 << 20) + 3,
	.off = 4093,
	.cold = true,
};

FIXTURE_VARIANT_ADD(odp_xfer, mib_warm) {
	.size = (1 << 20) + 3,
	.off = 4093,
	.cold = false,
};

FIXTURE_SETUP(odp_xfer)
{
	ctx_setup(_metadata, &self->c);
}

FIXTURE_TEARDOWN(odp_xfer)
{
	ctx_teardown(&self->c);
}

/*
 * Set up the buffers of @x in slots 0 (source) and 1 (destination), the
 * source holding pattern @seed at x->off and SENT_SRC around it:
 * - a cold ODP source is a memfd mapping filled with pwrite() (content
 *   known, pages not mapped in this process), a warm one or a plain one is
 *   anonymous memory filled by the CPU;
 * - a cold ODP destination is fresh anonymous memory (reads back as 0
 *   outside the data), a warm one or a plain one holds SENT_DST.
 */
static void xfer_prepare(struct __test_metadata *_metadata,
			 struct odp_ctx *c, struct xfer *x, uint64_t seed)
{
	int src_access, dst_access;
	uint8_t *image;

	x->map_len = round_up(x->off + x->size + SLACK, PAGE_SZ);
	x->src_odp = (x->op == XOP_READ) == (x->side == SIDE_REMOTE);

	if (x->src_odp && x->cold) {
		image = malloc(x->map_len);
		ASSERT_NE(NULL, image);
		memset(image, SENT_SRC, x->map_len);
		sodp_pattern_fill(image + x->off, x->size, seed, 0);
		x->src = slot_memfd(_metadata, c, 0, x->map_len, image);
		free(image);
	} else {
		x->src = slot_anon(_metadata, c, 0, x->map_len, SENT_SRC);
		sodp_pattern_fill(x->src + x->off, x->size, seed, 0);
	}
	if (!x->src_odp && x->cold) {
		x->dst = slot_anon(_metadata, c, 1, x->map_len, -1);
		x->dst_fill = 0;
	} else {
		x->dst = slot_anon(_metadata, c, 1, x->map_len, SENT_DST);
		x->dst_fill = SENT_DST;
	}

	/* A READ source is registered read-only: a read-only ODP mirror. */
	src_access = x->op == XOP_READ ? IBV_ACCESS_REMOTE_READ :
					 IBV_ACCESS_LOCAL_WRITE;
	dst_access = x->op == XOP_WRITE ? SODP_ACCESS_RW :
					  IBV_ACCESS_LOCAL_WRITE;
	if (x->src_odp)
		src_access |= IBV_ACCESS_ON_DEMAND;
	else
		dst_access |= IBV_ACCESS_ON_DEMAND;
	x->smr = slot_reg(_metadata, c, 0, x->src, x->map_len, src_access);
	x->dmr = slot_reg(_metadata, c, 1, x->dst, x->map_len, dst_access);
}

/*
 * Run the transfer once: the source holds pattern @seed, the destination
 * its fill. Checks the completions by value, then both buffers byte for
 * byte (the source must be unchanged).
 */
static void xfer_once(struct __test_metadata *_metadata, struct odp_ctx *c,
		      struct xfer *x, uint64_t seed)
{
	struct sodp_end *cli = &c->pair.cli, *srv = &c->pair.srv;
	uint8_t *src = x->src + x->off, *dst = x->dst + x->off;
	int tmo = c->dev.timeout_ms;
	size_t size = x->size;

	switch (x->op) {
	case XOP_SEND:
	case XOP_SRQ:
		if (x->op == XOP_SRQ) {
			ASSERT_EQ(0, sodp_post_srq_recv(c->srq, WRID_RECV, dst,
							size + SLACK,
							x->dmr->lkey));
		} else {
			ASSERT_EQ(0, sodp_post_recv(srv, WRID_RECV, dst,
						    size + SLACK,
						    x->dmr->lkey));
		}
		ASSERT_EQ(0, sodp_post_send(cli, WRID_SEND, src, size,
					    x->smr->lkey));
		expect_wc(_metadata, cli->scq, tmo, WRID_SEND, IBV_WC_SUCCESS,
			  IBV_WC_SEND, size);
		expect_wc(_metadata, srv->rcq, tmo, WRID_RECV, IBV_WC_SUCCESS,
			  IBV_WC_RECV, size);
		break;
	case XOP_WRITE:
		rdma_write(_metadata, c, src, size, x->smr->lkey,
			   (uintptr_t)dst, x->dmr->rkey);
		break;
	case XOP_READ:
		rdma_read(_metadata, c, dst, size, x->dmr->lkey,
			  (uintptr_t)src, x->smr->rkey);
		break;
	case XOP_UD:
		ASSERT_TRUE(false) TH_LOG("UD goes through ud_xfer()");
	}

	expect_region(_metadata, x->dst, x->map_len, x->off, size, seed, 0,
		      x->dst_fill);
	expect_region(_metadata, x->src, x->map_len, x->off, size, seed, 0,
		      SENT_SRC);
}

/*
 * One side of one opcode: cold means the single transfer is the first
 * access to the ODP buffer and must fault (the global fault count grows);
 * warm means the CPU initialised the buffer and a first transfer mirrored
 * and cached it, then the CPU changed the data and the measured transfer
 * must see (source) or replace (destination) exactly the new bytes.
 */
static void xfer_side(struct __test_metadata *_metadata, struct odp_ctx *c,
		      const FIXTURE_VARIANT(odp_xfer) *variant, enum xop op,
		      enum side side)
{
	struct xfer x = {
		.op = op,
		.side = side,
		.cold = variant->cold,
		.size = variant->size,
		.off = variant->off,
	};
	uint64_t seed = c->seed ^ (side * 0x1000 + op);
	int64_t faults;

	xfer_prepare(_metadata, c, &x, variant->cold ? seed : ~seed);
	if (!variant->cold) {
		xfer_once(_metadata, c, &x, ~seed);
		sodp_pattern_fill(x.src + x.off, x.size, seed, 0);
		memset(x.dst, x.dst_fill, x.map_len);
	}
	faults = dbg_get(_metadata, "faults");
	xfer_once(_metadata, c, &x, seed);
	if (variant->cold)
		ASSERT_LT(faults, dbg_get(_metadata, "faults"))
			TH_LOG("a cold ODP %s buffer did not fault",
			       x.src_odp ? "source" : "destination");
	ctx_slot_release(c, 0);
	ctx_slot_release(c, 1);
}

static void xfer_test(struct __test_metadata *_metadata, struct odp_ctx *c,
		      const FIXTURE_VARIANT(odp_xfer) *variant, enum xop op)
{
	const char *why = odp_skip(c, IBV_QPT_RC, xop_bits(op, SIDE_LOCAL) |
				   xop_bits(op, SIDE_REMOTE), false);

	if (why)
		SKIP(return, "%s", why);
	if (op == XOP_SRQ) {
		struct ibv_srq_init_attr attr = {
			.attr = { .max_wr = 16, .max_sge = 1 },
		};

		c->srq = ibv_create_srq(c->dev.pd, &attr);
		ASSERT_NE(NULL, c->srq) TH_LOG("ibv_create_srq: %s",
					       strerror(errno));
	}
	ctx_connect(_metadata, c);
	xfer_side(_metadata, c, variant, op, SIDE_LOCAL);
	xfer_side(_metadata, c, variant, op, SIDE_REMOTE);
}

/*
 * RC SEND into a RECV, the SEND buffer (local) and then the RECV buffer
 * (remote) in an ODP MR: completions SEND/RECV with the length, the data
 * arrives byte for byte, nothing around it changes.
 */
TEST_F_TIMEOUT(odp_xfer, send_recv, CASE_TIMEOUT)
{
	xfer_test(_metadata, &self->c, variant, XOP_SEND);
}

/* As send_recv, with the RECV posted on an SRQ the server QP uses. */
TEST_F_TIMEOUT(odp_xfer, srq_recv, CASE_TIMEOUT)
{
	xfer_test(_metadata, &self->c, variant, XOP_SRQ);
}

/*
 * RDMA WRITE from an ODP source (local), then into an ODP target (remote);
 * the data is checked after a SEND/RECV sync (placement on iWARP).
 */
TEST_F_TIMEOUT(odp_xfer, rdma_write, CASE_TIMEOUT)
{
	xfer_test(_metadata, &self->c, variant, XOP_WRITE);
}

/*
 * RDMA READ into an ODP destination (local), then from an ODP source
 * registered REMOTE_READ only (remote).
 */
TEST_F_TIMEOUT(odp_xfer, rdma_read, CASE_TIMEOUT)
{
	xfer_test(_metadata, &self->c, variant, XOP_READ);
}

#define UD_MSGS_MAX	8

/*
 * UD SEND/RECV with the SEND buffer, then the RECV buffer, in an ODP MR.
 * A datagram is at most one MTU, so a variant larger than the MTU sends
 * UD_MSGS_MAX full datagrams instead (from contiguous source bytes into
 * RECV buffers two pages apart). Each datagram's data spans a page
 * boundary of the RECV buffer; the GRH lands in the SODP_GRH_LEN bytes in
 * front of it. Receive completions are RECV with GRH and length + GRH.
 */
static void ud_side(struct __test_metadata *_metadata, struct odp_ctx *c,
		    const FIXTURE_VARIANT(odp_xfer) *variant, enum side side)
{
	size_t mtu = 128u << c->dev.port_attr.active_mtu;
	size_t len = variant->size < mtu ? variant->size : mtu;
	unsigned int nmsg = variant->size > mtu ? UD_MSGS_MAX : 1;
	uint64_t seed = c->seed ^ (side * 0x1000 + XOP_UD);
	size_t soff = variant->off, slen, dlen, doff[UD_MSGS_MAX];
	int tmo = c->dev.timeout_ms;
	uint8_t *src, *dst, *image, fill;
	unsigned int k, round;
	struct ibv_mr *smr, *dmr;
	struct ibv_wc wc;
	size_t pos;
	int64_t faults;

	slen = round_up(soff + nmsg * len + SLACK, PAGE_SZ);
	dlen = (2 * nmsg + 1) * PAGE_SZ;
	for (k = 0; k < nmsg; k++)
		doff[k] = (2 * k + 1) * PAGE_SZ - len / 2 - (len == 1);

	if (side == SIDE_LOCAL && variant->cold) {
		image = malloc(slen);
		ASSERT_NE(NULL, image);
		memset(image, SENT_SRC, slen);
		sodp_pattern_fill(image + soff, nmsg * len, seed, 0);
		src = slot_memfd(_metadata, c, 0, slen, image);
		free(image);
	} else {
		src = slot_anon(_metadata, c, 0, slen, SENT_SRC);
		sodp_pattern_fill(src + soff, nmsg * len, variant->cold ?
				  seed : ~seed, 0);
	}
	fill = side == SIDE_REMOTE && variant->cold ? 0 : SENT_DST;
	dst = slot_anon(_metadata, c, 1, dlen, fill ? fill : -1);
	smr = slot_reg(_metadata, c, 0, src, slen, IBV_ACCESS_LOCAL_WRITE |
		       (side == SIDE_LOCAL ? IBV_ACCESS_ON_DEMAND : 0));
	dmr = slot_reg(_metadata, c, 1, dst, dlen, IBV_ACCESS_LOCAL_WRITE |
		       (side == SIDE_REMOTE ? IBV_ACCESS_ON_DEMAND : 0));

	/* Round 0 warms a warm buffer up, round 1 is the checked one. */
	for (round = variant->cold; round < 2; round++) {
		uint64_t s = round ? seed : ~seed;

		if (round && !variant->cold) {
			sodp_pattern_fill(src + soff, nmsg * len, seed, 0);
			memset(dst, fill, dlen);
		}
		faults = dbg_get(_metadata, "faults");
		for (k = 0; k < nmsg; k++)
			ASSERT_EQ(0, sodp_post_recv(&c->ud.rcv, WRID_RECV + k,
						    dst + doff[k] - SODP_GRH_LEN,
						    SODP_GRH_LEN + len + SLACK,
						    dmr->lkey));
		for (k = 0; k < nmsg; k++)
			ASSERT_EQ(0, sodp_ud_post_send(&c->ud, WRID_SEND + k,
						       src + soff + k * len,
						       len, smr->lkey));
		for (k = 0; k < nmsg; k++)
			expect_wc(_metadata, c->ud.snd.scq, tmo, WRID_SEND + k,
				  IBV_WC_SUCCESS, IBV_WC_SEND, len);
		for (k = 0; k < nmsg; k++) {
			expect_wc_out(_metadata, c->ud.rcv.rcq, tmo,
				      WRID_RECV + k, IBV_WC_SUCCESS,
				      IBV_WC_RECV, len + SODP_GRH_LEN, &wc);
			ASSERT_NE(0u, wc.wc_flags & IBV_WC_GRH);
			ASSERT_EQ(c->ud.snd.qp->qp_num, wc.src_qp);
		}

		/* The data, the fill between datagrams, GRHs skipped. */
		pos = 0;
		for (k = 0; k < nmsg; k++) {
			ASSERT_BYTES(dst + pos, doff[k] - SODP_GRH_LEN - pos,
				     fill);
			ASSERT_PATTERN(dst + doff[k], len, s, k * len);
			pos = doff[k] + len;
		}
		ASSERT_BYTES(dst + pos, dlen - pos, fill);
		expect_region(_metadata, src, slen, soff, nmsg * len, s, 0,
			      SENT_SRC);
		if (variant->cold)
			ASSERT_LT(faults, dbg_get(_metadata, "faults"));
	}
	ctx_slot_release(c, 0);
	ctx_slot_release(c, 1);
}

/*
 * UD SEND/RECV (plain verbs, address handle from the device's RoCE v2
 * GID) with the SEND buffer, then the RECV buffer, in an ODP MR; see
 * ud_side(). No UD on iWARP.
 */
TEST_F_TIMEOUT(odp_xfer, ud_send_recv, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const char *why;

	if (c->dev.iwarp)
		SKIP(return, "%s: no UD on iWARP", c->dev.name);
	why = odp_skip(c, IBV_QPT_UD,
		       IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV, false);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, sodp_ud_create(&c->dev, &c->ud));
	ud_side(_metadata, c, variant, SIDE_LOCAL);
	ud_side(_metadata, c, variant, SIDE_REMOTE);
}

FIXTURE(odp_atomic) {
	struct odp_ctx c;
};

FIXTURE_VARIANT(odp_atomic) {
	bool cold;
};

FIXTURE_VARIANT_ADD(odp_atomic, cold) {
	.cold = true,
};

FIXTURE_VARIANT_ADD(odp_atomic, warm) {
	.cold = false,
};

FIXTURE_SETUP(odp_atomic)
{
	ctx_setup(_metadata, &self->c);
}

FIXTURE_TEARDOWN(odp_atomic)
{
	ctx_teardown(&self->c);
}

#define TGT_OFF		(PAGE_SZ - 8)	/* last word of the target page */
#define RES_OFF		8		/* result word in the local page */

/* Post one atomic and check its completion, result and target. */
static void atomic_once(struct __test_metadata *_metadata, struct odp_ctx *c,
			enum ibv_wr_opcode opcode, uint8_t *tgt,
			struct ibv_mr *tmr, uint8_t *res, struct ibv_mr *rmr,
			uint64_t cmp_add, uint64_t swap, uint64_t old,
			uint64_t new)
{
	uint64_t *result = (uint64_t *)(res + RES_OFF);

	ASSERT_EQ(0, sodp_post_atomic(&c->pair.cli, opcode, WRID_ATOMIC,
				      result, rmr->lkey,
				      (uintptr_t)tgt + TGT_OFF, tmr->rkey,
				      cmp_add, swap));
	expect_wc(_metadata, c->pair.cli.scq, c->dev.timeout_ms, WRID_ATOMIC,
		  IBV_WC_SUCCESS, opcode == IBV_WR_ATOMIC_FETCH_AND_ADD ?
		  IBV_WC_FETCH_ADD : IBV_WC_COMP_SWAP, 8);
	ASSERT_EQ(old, *result);
	ASSERT_EQ(new, *(uint64_t *)(tgt + TGT_OFF));
}

/*
 * One side of an atomic case: the target word in an ODP MR (remote) or the
 * local result word in one (local); cold target pages are a memfd holding
 * the initial value, a cold result page fresh anonymous memory.
 */
static void atomic_side(struct __test_metadata *_metadata, struct odp_ctx *c,
			bool cold, enum ibv_wr_opcode opcode, enum side side)
{
	const uint64_t v0 = 0x0123456789abcdefull ^ c->seed;
	const uint64_t add = 0x1111, add2 = 0xffff000000000001ull;
	uint8_t image[PAGE_SZ], *tgt, *res, res_fill;
	struct ibv_mr *tmr, *rmr;
	int64_t faults;

	memset(image, SENT_SRC, sizeof(image));
	memcpy(image + TGT_OFF, &v0, sizeof(v0));
	if (side == SIDE_REMOTE && cold) {
		tgt = slot_memfd(_metadata, c, 0, PAGE_SZ, image);
	} else {
		tgt = slot_anon(_metadata, c, 0, PAGE_SZ, 0);
		memcpy(tgt, image, PAGE_SZ);
	}
	res_fill = side == SIDE_LOCAL && cold ? 0 : SENT_DST;
	res = slot_anon(_metadata, c, 1, PAGE_SZ, res_fill ? res_fill : -1);
	tmr = slot_reg(_metadata, c, 0, tgt, PAGE_SZ,
		       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_ATOMIC |
		       (side == SIDE_REMOTE ? IBV_ACCESS_ON_DEMAND : 0));
	rmr = slot_reg(_metadata, c, 1, res, PAGE_SZ, IBV_ACCESS_LOCAL_WRITE |
		       (side == SIDE_LOCAL ? IBV_ACCESS_ON_DEMAND : 0));

	if (!cold) {
		/* Warm up both words with an atomic that changes nothing. */
		atomic_once(_metadata, c, IBV_WR_ATOMIC_FETCH_AND_ADD, tgt,
			    tmr, res, rmr, 0, 0, v0, v0);
		memset(res + RES_OFF, res_fill, 8);
	}
	faults = dbg_get(_metadata, "faults");
	if (opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) {
		atomic_once(_metadata, c, opcode, tgt, tmr, res, rmr, add, 0,
			    v0, v0 + add);
		atomic_once(_metadata, c, opcode, tgt, tmr, res, rmr, add2, 0,
			    v0 + add, v0 + add + add2);
	} else {
		/* A compare that hits, then one that misses. */
		atomic_once(_metadata, c, opcode, tgt, tmr, res, rmr, v0, ~v0,
			    v0, ~v0);
		atomic_once(_metadata, c, opcode, tgt, tmr, res, rmr, v0, 0,
			    ~v0, ~v0);
	}
	if (cold)
		ASSERT_LT(faults, dbg_get(_metadata, "faults"));
	ASSERT_BYTES(tgt, TGT_OFF, SENT_SRC);
	ASSERT_BYTES(res, RES_OFF, res_fill);
	ASSERT_BYTES(res + RES_OFF + 8, PAGE_SZ - RES_OFF - 8, res_fill);
	ctx_slot_release(c, 0);
	ctx_slot_release(c, 1);
}

static void atomic_test(struct __test_metadata *_metadata, struct odp_ctx *c,
			bool cold, enum ibv_wr_opcode opcode)
{
	const char *why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_SEND |
				   IBV_ODP_SUPPORT_ATOMIC, false);

	if (c->dev.attr.atomic_cap == IBV_ATOMIC_NONE)
		SKIP(return, "%s reports no atomic support", c->dev.name);
	if (why)
		SKIP(return, "%s", why);
	ctx_connect(_metadata, c);
	atomic_side(_metadata, c, cold, opcode, SIDE_LOCAL);
	atomic_side(_metadata, c, cold, opcode, SIDE_REMOTE);
}

/*
 * FETCH_ADD twice (the second wraps around 2^64) with the result word,
 * then the target word, in an ODP MR: completions FETCH_ADD with length 8,
 * the old values returned, the target updated, every other byte of both
 * pages unchanged.
 */
TEST_F_TIMEOUT(odp_atomic, fetch_add, CASE_TIMEOUT)
{
	atomic_test(_metadata, &self->c, variant->cold,
		    IBV_WR_ATOMIC_FETCH_AND_ADD);
}

/* CMP_SWAP that hits, then one that misses; as fetch_add otherwise. */
TEST_F_TIMEOUT(odp_atomic, cmp_swap, CASE_TIMEOUT)
{
	atomic_test(_metadata, &self->c, variant->cold,
		    IBV_WR_ATOMIC_CMP_AND_SWP);
}

/* ---- The mm changes the memory under a live MR ---------------------- */

#define RM_PAGES	16

/*
 * munmap() + mmap(MAP_FIXED) inside a live, mirrored and cached ODP MR:
 * after pages 4..7 are replaced by fresh anonymous memory and pages 10..11
 * by a shared memfd mapping, an RDMA READ of the whole MR returns zeros
 * and the file's content there (not the stale pages); an RDMA WRITE
 * across them lands in the new pages (and in the file); replacing written
 * pages again makes a READ return zeros.
 */
TEST_F_TIMEOUT(odp, munmap_remap, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t len = RM_PAGES * PAGE_SZ, P = PAGE_SZ;
	const size_t woff = 3 * P + 100, wlen = 8 * P - 93;
	uint64_t sa = c->seed, sb = c->seed ^ 0xb, sc = c->seed ^ 0xc;
	uint8_t *buf, *dst, *src, *image;
	struct ibv_mr *mr, *dmr, *smr;
	const char *why;
	void *p;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE |
		       IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	buf = slot_anon(_metadata, c, 0, len, 0);
	sodp_pattern_fill(buf, len, sa, 0);
	dst = slot_anon(_metadata, c, 1, len, SENT_LOCAL);
	src = slot_anon(_metadata, c, 2, len, 0);
	sodp_pattern_fill(src, wlen, sb, 0);
	image = slot_anon(_metadata, c, 3, 2 * P, 0);
	mr = slot_reg(_metadata, c, 0, buf, len, ODP_RW);
	dmr = slot_reg(_metadata, c, 1, dst, len, IBV_ACCESS_LOCAL_WRITE);
	smr = slot_reg(_metadata, c, 2, src, wlen, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	/* Mirror and cache every page. */
	rdma_read(_metadata, c, dst, len, dmr->lkey, (uintptr_t)buf,
		  mr->rkey);
	ASSERT_PATTERN(dst, len, sa, 0);

	ASSERT_EQ(0, munmap(buf + 4 * P, 4 * P));
	p = mmap(buf + 4 * P, 4 * P, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_EQ(buf + 4 * P, p);
	sodp_pattern_fill(image, 2 * P, sc, 0);
	c->fd[3] = memfd_create("sodp_odp", MFD_CLOEXEC);
	ASSERT_LE(0, c->fd[3]);
	ASSERT_EQ((ssize_t)(2 * P), pwrite(c->fd[3], image, 2 * P, 0));
	p = mmap(buf + 10 * P, 2 * P, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, c->fd[3], 0);
	ASSERT_EQ(buf + 10 * P, p);

	memset(dst, SENT_LOCAL, len);
	rdma_read(_metadata, c, dst, len, dmr->lkey, (uintptr_t)buf,
		  mr->rkey);
	ASSERT_PATTERN(dst, 4 * P, sa, 0);
	ASSERT_BYTES(dst + 4 * P, 4 * P, 0);
	ASSERT_PATTERN(dst + 8 * P, 2 * P, sa, 8 * P);
	ASSERT_PATTERN(dst + 10 * P, 2 * P, sc, 0);
	ASSERT_PATTERN(dst + 12 * P, 4 * P, sa, 12 * P);

	/* [3P + 100, 11P + 7): old, new anonymous, old, file pages. */
	rdma_write(_metadata, c, src, wlen, smr->lkey, (uintptr_t)buf + woff,
		   mr->rkey);
	ASSERT_PATTERN(buf, woff, sa, 0);
	ASSERT_PATTERN(buf + woff, wlen, sb, 0);
	ASSERT_PATTERN(buf + woff + wlen, 12 * P - woff - wlen, sc,
		       woff + wlen - 10 * P);
	ASSERT_PATTERN(buf + 12 * P, 4 * P, sa, 12 * P);
	ASSERT_EQ((ssize_t)(2 * P), pread(c->fd[3], image, 2 * P, 0));
	ASSERT_PATTERN(image, P + 7, sb, 10 * P - woff);
	ASSERT_PATTERN(image + P + 7, P - 7, sc, P + 7);

	/* Replace written pages: the data written before is gone. */
	ASSERT_EQ(0, munmap(buf + 4 * P, 4 * P));
	p = mmap(buf + 4 * P, 4 * P, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_EQ(buf + 4 * P, p);
	rdma_read(_metadata, c, dst, len, dmr->lkey, (uintptr_t)buf,
		  mr->rkey);
	ASSERT_BYTES(dst + 4 * P, 4 * P, 0);
	ASSERT_SAME(dst, buf, len);
}

/*
 * MADV_DONTNEED on mirrored pages of a live ODP MR: an RDMA READ returns
 * zeros there; a WRITE into the fresh pages works and a second
 * MADV_DONTNEED drops it again, as it would for the CPU.
 */
TEST_F_TIMEOUT(odp, madv_dontneed, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, len = 8 * P;
	uint64_t sa = c->seed, sb = c->seed ^ 0xb;
	struct ibv_mr *mr, *dmr, *smr;
	uint8_t *buf, *dst, *src;
	const char *why;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE |
		       IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	buf = slot_anon(_metadata, c, 0, len, 0);
	sodp_pattern_fill(buf, len, sa, 0);
	dst = slot_anon(_metadata, c, 1, len, SENT_LOCAL);
	src = slot_anon(_metadata, c, 2, P, 0);
	sodp_pattern_fill(src, P, sb, 0);
	mr = slot_reg(_metadata, c, 0, buf, len, ODP_RW);
	dmr = slot_reg(_metadata, c, 1, dst, len, IBV_ACCESS_LOCAL_WRITE);
	smr = slot_reg(_metadata, c, 2, src, P, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	rdma_read(_metadata, c, dst, len, dmr->lkey, (uintptr_t)buf,
		  mr->rkey);
	ASSERT_PATTERN(dst, len, sa, 0);

	ASSERT_EQ(0, madvise(buf + 2 * P, 3 * P, MADV_DONTNEED));
	rdma_read(_metadata, c, dst, len, dmr->lkey, (uintptr_t)buf,
		  mr->rkey);
	ASSERT_PATTERN(dst, 2 * P, sa, 0);
	ASSERT_BYTES(dst + 2 * P, 3 * P, 0);
	ASSERT_PATTERN(dst + 5 * P, 3 * P, sa, 5 * P);

	rdma_write(_metadata, c, src, P, smr->lkey,
		   (uintptr_t)buf + 2 * P + 10, mr->rkey);
	ASSERT_PATTERN(buf + 2 * P + 10, P, sb, 0);
	ASSERT_EQ(0, madvise(buf + 2 * P, 3 * P, MADV_DONTNEED));
	rdma_read(_metadata, c, dst, len, dmr->lkey, (uintptr_t)buf,
		  mr->rkey);
	ASSERT_BYTES(dst + 2 * P, 3 * P, 0);
	ASSERT_SAME(dst, buf, len);
}

/*
 * mremap() under a live, mirrored ODP MR: two pages of another mapping
 * moved into the MR's range (MREMAP_FIXED) are what an RDMA READ returns
 * there; moving them out again leaves a hole that a READ across it is
 * refused on (placing at most the data before the hole, never the moved
 * pages), while the rest of the MR keeps working and the moved pages kept
 * their content.
 */
TEST_F_TIMEOUT(odp, mremap_move, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, len = 8 * P;
	uint64_t sa = c->seed, sb = c->seed ^ 0xb;
	uint8_t *buf, *dst, *other, *away;
	struct ibv_mr *mr, *dmr;
	const char *why;
	size_t i;
	void *p;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	buf = slot_anon(_metadata, c, 0, len, 0);
	sodp_pattern_fill(buf, len, sa, 0);
	dst = slot_anon(_metadata, c, 1, len, SENT_LOCAL);
	other = slot_anon(_metadata, c, 2, 2 * P, 0);
	sodp_pattern_fill(other, 2 * P, sb, 0);
	away = slot_anon(_metadata, c, 3, 2 * P, 0);
	mr = slot_reg(_metadata, c, 0, buf, len, ODP_RW);
	dmr = slot_reg(_metadata, c, 1, dst, len, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	rdma_read(_metadata, c, dst, len, dmr->lkey, (uintptr_t)buf,
		  mr->rkey);
	ASSERT_PATTERN(dst, len, sa, 0);

	p = mremap(other, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED,
		   buf + 3 * P);
	ASSERT_EQ(buf + 3 * P, p);
	c->map[2] = NULL;
	rdma_read(_metadata, c, dst, len, dmr->lkey, (uintptr_t)buf,
		  mr->rkey);
	ASSERT_PATTERN(dst, 3 * P, sa, 0);
	ASSERT_PATTERN(dst + 3 * P, 2 * P, sb, 0);
	ASSERT_PATTERN(dst + 5 * P, 3 * P, sa, 5 * P);

	p = mremap(buf + 3 * P, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED,
		   away);
	ASSERT_EQ(away, p);
	memset(dst, SENT_LOCAL, len);
	rdma_refused(_metadata, c, IBV_WR_RDMA_READ, dst, len, dmr->lkey,
		     (uintptr_t)buf, mr->rkey);
	/* Responses before the hole may have been placed, none after. */
	for (i = 0; i < 3 * P; i++)
		if (dst[i] != SENT_LOCAL &&
		    dst[i] != sodp_pattern_byte(sa, i))
			break;
	ASSERT_EQ(3 * P, i) TH_LOG("byte %zu is %#x", i, dst[i]);
	ASSERT_BYTES(dst + 3 * P, 5 * P, SENT_LOCAL);
	ctx_connect(_metadata, c);
	rdma_read(_metadata, c, dst, 3 * P, dmr->lkey, (uintptr_t)buf,
		  mr->rkey);
	ASSERT_PATTERN(dst, 3 * P, sa, 0);
	rdma_read(_metadata, c, dst + 5 * P, 3 * P, dmr->lkey,
		  (uintptr_t)buf + 5 * P, mr->rkey);
	ASSERT_PATTERN(dst + 5 * P, 3 * P, sa, 5 * P);
	ASSERT_PATTERN(away, 2 * P, sb, 0);
}

/* Wait (bounded) for one byte from @fd; 0 if it is @want. */
static int pipe_wait(int fd, char want)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char got;

	if (poll(&pfd, 1, 60000) != 1 || read(fd, &got, 1) != 1)
		return -1;
	return got == want ? 0 : -1;
}

static int pipe_send(int fd, char what)
{
	return write(fd, &what, 1) == 1 ? 0 : -1;
}

/* Report a failed check of a forked child; returns the exit code. */
static int child_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "# child %d: ", getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return 1;
}

/*
 * The child of fork_cow: uses no verbs, only its copy of the memory. The
 * parent writes its half 1 through the MR after the fork, which the child
 * must not see; the child writes half 2 with the CPU, which the parent's
 * MR must not see.
 */
static int fork_cow_child(uint8_t *buf, size_t half, uint64_t sa,
			  uint64_t sb, int rfd, int wfd)
{
	ssize_t off;

	if (pipe_wait(rfd, '1'))
		return child_fail("no go from the parent");
	off = sodp_pattern_check(buf, half, sa, 0);
	if (off >= 0)
		return child_fail("half 1 changed at %zd: the parent's WRITE leaked",
				  off);
	sodp_pattern_fill(buf + half, half, sb, 0);
	if (pipe_send(wfd, 'w'))
		return child_fail("pipe");
	if (pipe_wait(rfd, '2'))
		return child_fail("no second go from the parent");
	off = sodp_pattern_check(buf, 2 * half, sa, 0);
	if (off >= 0 && off < (ssize_t)half)
		return child_fail("half 1 changed at %zd", off);
	off = sodp_pattern_check(buf + half, half, sb, 0);
	if (off >= 0)
		return child_fail("half 2 changed at %zd: the parent's WRITE leaked",
				  off);
	return 0;
}

/*
 * fork() with a live, mirrored and cached (writable) ODP MR: the parent's
 * MR keeps serving the parent's pages. After the fork the parent
 * RDMA-WRITEs pattern C into half 1 (the child must still see A there),
 * the child writes B into half 2 with the CPU, then the parent
 * RDMA-WRITEs C into half 2: the child sees only B, the parent (CPU and
 * RDMA READ) only C. Pipes order the steps; the child uses no verbs.
 */
TEST_F_TIMEOUT(odp, fork_cow, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, half = 4 * P, len = 2 * half;
	uint64_t sa = c->seed, sb = c->seed ^ 0xb, sc = c->seed ^ 0xc;
	struct ibv_mr *mr, *dmr, *smr;
	uint8_t *buf, *dst, *src;
	int p2c[2], c2p[2], status;
	const char *why;
	pid_t pid;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE |
		       IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	buf = slot_anon(_metadata, c, 0, len, 0);
	sodp_pattern_fill(buf, len, sa, 0);
	dst = slot_anon(_metadata, c, 1, len, SENT_LOCAL);
	src = slot_anon(_metadata, c, 2, len, 0);
	sodp_pattern_fill(src, len, sa, 0);
	mr = slot_reg(_metadata, c, 0, buf, len, ODP_RW);
	dmr = slot_reg(_metadata, c, 1, dst, len, IBV_ACCESS_LOCAL_WRITE);
	smr = slot_reg(_metadata, c, 2, src, len, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	/* Mirror every page writable and cache it: write A over A. */
	rdma_write(_metadata, c, src, len, smr->lkey, (uintptr_t)buf,
		   mr->rkey);
	sodp_pattern_fill(src, len, sc, 0);

	ASSERT_EQ(0, pipe(p2c));
	ASSERT_EQ(0, pipe(c2p));
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(p2c[1]);
		close(c2p[0]);
		_exit(fork_cow_child(buf, half, sa, sb, p2c[0], c2p[1]));
	}
	close(p2c[0]);
	close(c2p[1]);

	rdma_write(_metadata, c, src, half, smr->lkey, (uintptr_t)buf,
		   mr->rkey);
	ASSERT_PATTERN(buf, half, sc, 0);
	ASSERT_EQ(0, pipe_send(p2c[1], '1'));
	ASSERT_EQ(0, pipe_wait(c2p[0], 'w'));
	ASSERT_PATTERN(buf + half, half, sa, half);
	rdma_write(_metadata, c, src + half, half, smr->lkey,
		   (uintptr_t)buf + half, mr->rkey);
	ASSERT_PATTERN(buf, len, sc, 0);
	ASSERT_EQ(0, pipe_send(p2c[1], '2'));
	close(p2c[1]);
	close(c2p[0]);

	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status)) TH_LOG("child status %#x", status);
	ASSERT_EQ(0, WEXITSTATUS(status));

	rdma_read(_metadata, c, dst, len, dmr->lkey, (uintptr_t)buf,
		  mr->rkey);
	ASSERT_PATTERN(dst, len, sc, 0);
}

/*
 * mprotect(PROT_READ) of a mirrored, writable ODP MR: RDMA READ still
 * works, a remote RDMA WRITE (and FETCH_ADD, with atomics) is refused
 * (IBV_WC_REM_ACCESS_ERR on RoCE, see rdma_refused()) and nothing is
 * written. Under PROT_NONE a READ is
 * refused too and places nothing. After PROT_READ|PROT_WRITE is restored
 * a fresh connection writes again, verified byte for byte.
 */
TEST_F_TIMEOUT(odp, mprotect_ro, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, len = 4 * P;
	const size_t woff = P + 100, wlen = P + 50;
	uint64_t sa = c->seed, sb = c->seed ^ 0xb;
	struct ibv_mr *mr, *lmr;
	uint8_t *buf, *loc;
	const char *why;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE |
		       IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	buf = slot_anon(_metadata, c, 0, len, 0);
	sodp_pattern_fill(buf, len, sa, 0);
	loc = slot_anon(_metadata, c, 1, 2 * len, SENT_LOCAL);
	sodp_pattern_fill(loc, wlen, sb, 0);
	mr = slot_reg(_metadata, c, 0, buf, len, ODP_RW);
	lmr = slot_reg(_metadata, c, 1, loc, 2 * len, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	/* Mirrored writable and cached: write the same bytes back. */
	rdma_write(_metadata, c, buf + woff, wlen, mr->lkey,
		   (uintptr_t)buf + woff, mr->rkey);

	ASSERT_EQ(0, mprotect(buf, len, PROT_READ));
	rdma_read(_metadata, c, loc + len, len, lmr->lkey, (uintptr_t)buf,
		  mr->rkey);
	ASSERT_PATTERN(loc + len, len, sa, 0);
	rdma_refused(_metadata, c, IBV_WR_RDMA_WRITE, loc, wlen, lmr->lkey,
		     (uintptr_t)buf + woff, mr->rkey);
	if (c->dev.attr.atomic_cap != IBV_ATOMIC_NONE &&
	    (c->dev.odp.per_transport_caps.rc_odp_caps &
	     IBV_ODP_SUPPORT_ATOMIC))
		rdma_refused(_metadata, c, IBV_WR_ATOMIC_FETCH_AND_ADD,
			     loc + 2 * len - 8, 8, lmr->lkey,
			     (uintptr_t)buf + 2 * P, mr->rkey);
	ASSERT_PATTERN(buf, len, sa, 0);

	ASSERT_EQ(0, mprotect(buf, len, PROT_NONE));
	memset(loc + len, SENT_LOCAL, len);
	rdma_refused(_metadata, c, IBV_WR_RDMA_READ, loc + len, len,
		     lmr->lkey, (uintptr_t)buf, mr->rkey);
	ASSERT_BYTES(loc + len, len, SENT_LOCAL);

	ASSERT_EQ(0, mprotect(buf, len, PROT_READ | PROT_WRITE));
	ASSERT_PATTERN(buf, len, sa, 0);
	ctx_connect(_metadata, c);
	rdma_write(_metadata, c, loc, wlen, lmr->lkey, (uintptr_t)buf + woff,
		   mr->rkey);
	ASSERT_PATTERN(buf, woff, sa, 0);
	ASSERT_PATTERN(buf + woff, wlen, sb, 0);
	ASSERT_PATTERN(buf + woff + wlen, len - woff - wlen, sa, woff + wlen);
}

/* ---- Huge pages ------------------------------------------------------ */

#define SMAPS_ROLLUP	"/proc/self/smaps_rollup"

/*
 * THP-backed ODP MR, 8 MiB at a 2 MiB boundary with MADV_HUGEPAGE: the
 * first half made THP by the CPU (skipped if no THP could be had), the
 * second half never touched. An RDMA WRITE of 1 MiB + 7 across the first
 * 2 MiB boundary mirrors whole huge pages (pages_faulted grows by at
 * least 512), one across the 6 MiB boundary faults THPs in from the MR;
 * the data and the bytes around it are checked, and RDMA READs of 1.5 MiB
 * across both boundaries return exactly what the CPU sees. Then
 * MADV_DONTNEED of one 4 KiB page inside a mirrored, cached THP (which
 * splits it): a READ across it returns zeros for that page and the data
 * around it, a WRITE across it lands.
 */
TEST_F_TIMEOUT(odp, thp, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t len = 8 * MIB, wl = MIB + 7, rl = 3 * MIB / 2;
	const size_t w1 = 2 * MIB - 5000, w2 = 6 * MIB - 3000;
	const size_t r1 = 2 * MIB - 777777, r2 = 6 * MIB - 777777;
	const size_t z = 2 * MIB + MIB / 2;	/* in w1's range and r1's */
	struct sodp_mr_stats st0, st1;
	struct ibv_mr *mr, *smr, *dmr;
	uint8_t *raw, *a, *src, *dst;
	long thp0, thp1, thp2;
	char mode[128] = "";
	const char *why;
	FILE *f;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE |
		       IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (f) {
		if (!fgets(mode, sizeof(mode), f))
			mode[0] = '\0';
		fclose(f);
	}
	if (!mode[0] || strstr(mode, "[never]"))
		SKIP(return, "THP is not available (enabled: %s)", mode);

	raw = slot_anon(_metadata, c, 0, len + HPAGE_SZ, -1);
	a = (uint8_t *)round_up((uintptr_t)raw, HPAGE_SZ);
	ASSERT_EQ(0, madvise(a, len, MADV_HUGEPAGE));
	thp0 = kb_field(SMAPS_ROLLUP, "AnonHugePages");
	memset(a, SENT_DST, len / 2);
	thp1 = kb_field(SMAPS_ROLLUP, "AnonHugePages");
	if (thp1 - thp0 < 2048)
		SKIP(return, "no THP allocated (AnonHugePages %ld -> %ld kB)",
		     thp0, thp1);

	src = slot_anon(_metadata, c, 1, wl, 0);
	sodp_pattern_fill(src, wl, c->seed, 0);
	dst = slot_anon(_metadata, c, 2, rl, SENT_LOCAL);
	mr = slot_reg(_metadata, c, 0, a, len, ODP_RW);
	smr = slot_reg(_metadata, c, 1, src, wl, IBV_ACCESS_LOCAL_WRITE);
	dmr = slot_reg(_metadata, c, 2, dst, rl, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	mr_stats(_metadata, c, mr, &st0);
	rdma_write(_metadata, c, src, wl, smr->lkey, (uintptr_t)a + w1,
		   mr->rkey);
	mr_stats(_metadata, c, mr, &st1);
	TH_LOG("warm THP write: %llu faults, %llu pages faulted",
	       (unsigned long long)(st1.page_faults - st0.page_faults),
	       (unsigned long long)(st1.pages_faulted - st0.pages_faulted));
	ASSERT_LE(512ull, st1.pages_faulted - st0.pages_faulted);
	expect_region(_metadata, a, len / 2, w1, wl, c->seed, 0, SENT_DST);

	rdma_write(_metadata, c, src, wl, smr->lkey, (uintptr_t)a + w2,
		   mr->rkey);
	thp2 = kb_field(SMAPS_ROLLUP, "AnonHugePages");
	TH_LOG("AnonHugePages %ld -> %ld -> %ld kB", thp0, thp1, thp2);
	expect_region(_metadata, a + len / 2, len / 2, w2 - len / 2, wl,
		      c->seed, 0, 0);

	rdma_read(_metadata, c, dst, rl, dmr->lkey, (uintptr_t)a + r1,
		  mr->rkey);
	ASSERT_SAME(dst, a + r1, rl);
	rdma_read(_metadata, c, dst, rl, dmr->lkey, (uintptr_t)a + r2,
		  mr->rkey);
	ASSERT_SAME(dst, a + r2, rl);

	/* Zap a 4 KiB page inside a mirrored, cached THP (PMD split). */
	ASSERT_EQ(0, madvise(a + z, PAGE_SZ, MADV_DONTNEED));
	rdma_read(_metadata, c, dst, rl, dmr->lkey, (uintptr_t)a + r1,
		  mr->rkey);
	ASSERT_BYTES(dst + z - r1, PAGE_SZ, 0);
	ASSERT_SAME(dst, a + r1, rl);
	rdma_write(_metadata, c, src, 2 * PAGE_SZ, smr->lkey,
		   (uintptr_t)a + z - PAGE_SZ / 2, mr->rkey);
	ASSERT_PATTERN(a + z - PAGE_SZ / 2, 2 * PAGE_SZ, c->seed, 0);
	rdma_read(_metadata, c, dst, rl, dmr->lkey, (uintptr_t)a + r1,
		  mr->rkey);
	ASSERT_SAME(dst, a + r1, rl);
}

#define NR_HUGEPAGES	"/proc/sys/vm/nr_hugepages"

/*
 * Map @n 2 MiB hugetlbfs pages (MAP_HUGETLB) into slot 0, reserving them
 * through nr_hugepages (restored by the teardown). NULL if the case was
 * skipped.
 */
static uint8_t *slot_hugetlb(struct __test_metadata *_metadata,
			     struct odp_ctx *c, int n)
{
	const char *why;
	long old;
	void *p;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE |
		       IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return NULL, "%s", why);
	if (kb_field("/proc/meminfo", "Hugepagesize") != 2048)
		SKIP(return NULL, "the default huge page size is not 2 MiB");
	old = read_long(NR_HUGEPAGES);
	if (old < 0)
		SKIP(return NULL, "no %s", NR_HUGEPAGES);
	c->nr_hugepages = old;
	write_long(NR_HUGEPAGES, old + n);

	p = mmap(NULL, n * HPAGE_SZ, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED)
		SKIP(return NULL, "no hugetlb pages (nr_hugepages %ld): %s",
		     read_long(NR_HUGEPAGES), strerror(errno));
	c->map[0] = p;
	c->map_len[0] = n * HPAGE_SZ;
	return p;
}

/*
 * hugetlbfs-backed ODP MR (two 2 MiB pages), never touched by the CPU: an
 * RDMA WRITE across the huge page boundary lands (zeros around it),
 * mirrors whole huge pages (pages_faulted >= 512) and an RDMA READ across
 * the boundary returns what the CPU sees.
 */
TEST_F_TIMEOUT(odp, hugetlb, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t len = 2 * HPAGE_SZ, wl = MIB + 7, rl = 3 * MIB / 2;
	const size_t w = HPAGE_SZ - 3000, r = HPAGE_SZ - 777777;
	struct sodp_mr_stats st0, st1;
	struct ibv_mr *mr, *smr, *dmr;
	uint8_t *h, *src, *dst;

	h = slot_hugetlb(_metadata, c, 2);
	if (!h)
		return;

	src = slot_anon(_metadata, c, 1, wl, 0);
	sodp_pattern_fill(src, wl, c->seed, 0);
	dst = slot_anon(_metadata, c, 2, rl, SENT_LOCAL);
	mr = slot_reg(_metadata, c, 0, h, len, ODP_RW);
	smr = slot_reg(_metadata, c, 1, src, wl, IBV_ACCESS_LOCAL_WRITE);
	dmr = slot_reg(_metadata, c, 2, dst, rl, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	mr_stats(_metadata, c, mr, &st0);
	rdma_write(_metadata, c, src, wl, smr->lkey, (uintptr_t)h + w,
		   mr->rkey);
	mr_stats(_metadata, c, mr, &st1);
	TH_LOG("hugetlb write: %llu faults, %llu pages faulted",
	       (unsigned long long)(st1.page_faults - st0.page_faults),
	       (unsigned long long)(st1.pages_faulted - st0.pages_faulted));
	ASSERT_LE(512ull, st1.pages_faulted - st0.pages_faulted);
	expect_region(_metadata, h, len, w, wl, c->seed, 0, 0);

	rdma_read(_metadata, c, dst, rl, dmr->lkey, (uintptr_t)h + r,
		  mr->rkey);
	ASSERT_SAME(dst, h + r, rl);
}

/*
 * IBV_ACCESS_HUGETLB, as rdma-core's ODP tests register hugetlbfs memory
 * (mlx5 accepts it): an ODP MR with it over two huge pages mirrors by huge
 * page, so a 4 MiB RDMA WRITE into the cold MR takes exactly two faults
 * and 1024 pages, and READs back what the CPU sees. The flag is refused
 * with EINVAL where hugetlbfs does not map the whole range (anonymous
 * memory, a range running past the mapping) and for an implicit MR, as
 * ib_umem_odp_alloc_implicit() does.
 */
TEST_F_TIMEOUT(odp, hugetlb_access, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t len = 2 * HPAGE_SZ;
	const int acc = ODP_RW | IBV_ACCESS_HUGETLB;
	struct sodp_mr_stats st0, st1;
	struct ibv_mr *mr, *smr;
	uint8_t *h, *src, *anon;

	h = slot_hugetlb(_metadata, c, 2);
	if (!h)
		return;

	anon = slot_anon(_metadata, c, 2, len, 0);
	EXPECT_REG_REFUSED(&c->dev, anon, len, acc, EINVAL);
	EXPECT_REG_REFUSED(&c->dev, h + HPAGE_SZ, len, acc, EINVAL);
	EXPECT_REG_REFUSED(&c->dev, NULL, SIZE_MAX, acc, EINVAL);

	src = slot_anon(_metadata, c, 1, len, 0);
	sodp_pattern_fill(src, len, c->seed, 0);
	mr = slot_reg(_metadata, c, 0, h, len, acc);
	smr = slot_reg(_metadata, c, 1, src, len, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	mr_stats(_metadata, c, mr, &st0);
	rdma_write(_metadata, c, src, len, smr->lkey, (uintptr_t)h, mr->rkey);
	mr_stats(_metadata, c, mr, &st1);
	TH_LOG("IBV_ACCESS_HUGETLB write of 4 MiB: %llu faults, %llu pages",
	       (unsigned long long)(st1.page_faults - st0.page_faults),
	       (unsigned long long)(st1.pages_faulted - st0.pages_faulted));
	ASSERT_EQ(2ull, st1.page_faults - st0.page_faults);
	ASSERT_EQ(1024ull, st1.pages_faulted - st0.pages_faulted);
	ASSERT_PATTERN(h, len, c->seed, 0);

	memset(src, 0, len);
	rdma_read(_metadata, c, src, len, smr->lkey, (uintptr_t)h, mr->rkey);
	ASSERT_PATTERN(src, len, c->seed, 0);
}

/* ---- Migration and compaction during traffic --------------------------- */

#define NSTREAMS	2	/* QPs working on the one MR at the same time */
#define STREAM_PAGES	16	/* pages per buffer of a stream */
#define MIGRATE_MS	30000	/* bound on the migration rounds */

/* NSTREAMS streams over one mapping and one ODP MR. */
struct traffic {
	uint8_t *buf;
	size_t npages;
	struct ibv_mr *mr;
	struct sodp_stream s[NSTREAMS];
};

/*
 * Set up @t: NSTREAMS x 3 buffers of @per 4 KiB pages (MADV_NOHUGEPAGE
 * before the CPU touches them) in slot 0, one ODP MR over all of them in
 * MR slot 0, stream 0 on c->pair and stream 1 on c->xpair.
 */
static void traffic_setup(struct __test_metadata *_metadata,
			  struct odp_ctx *c, struct traffic *t, size_t per)
{
	struct sodp_pair *pairs[NSTREAMS] = { &c->pair, &c->xpair };
	size_t len = per * PAGE_SZ;
	int i;

	memset(t, 0, sizeof(*t));
	t->npages = NSTREAMS * 3 * per;
	t->buf = slot_anon(_metadata, c, 0, t->npages * PAGE_SZ, -1);
	ASSERT_EQ(0, madvise(t->buf, t->npages * PAGE_SZ, MADV_NOHUGEPAGE));
	memset(t->buf, SENT_DST, t->npages * PAGE_SZ);
	t->mr = slot_reg(_metadata, c, 0, t->buf, t->npages * PAGE_SZ,
			 ODP_RW);
	ctx_connect(_metadata, c);
	ASSERT_EQ(0, sodp_pair_connect(&c->dev, &c->xpair));
	for (i = 0; i < NSTREAMS; i++) {
		struct sodp_stream *s = &t->s[i];

		s->pair = pairs[i];
		s->timeout_ms = c->dev.timeout_ms;
		s->mr = t->mr;
		s->len = len;
		s->tgt = t->buf + (3 * i) * len;
		s->src = t->buf + (3 * i + 1) * len;
		s->dst = t->buf + (3 * i + 2) * len;
		s->seed = c->seed + ((uint64_t)i << 32);
	}
}

static void traffic_start(struct __test_metadata *_metadata,
			  struct traffic *t)
{
	int i;

	for (i = 0; i < NSTREAMS; i++) {
		__atomic_store_n(&t->s[i].stop, 0, __ATOMIC_RELEASE);
		ASSERT_EQ(0, pthread_create(&t->s[i].thread, NULL, sodp_stream_main,
					    &t->s[i]));
		t->s[i].running = true;
	}
}

/* Stop and join the threads; no assertion, callers check afterwards. */
static void traffic_stop(struct traffic *t)
{
	int i;

	for (i = 0; i < NSTREAMS; i++)
		__atomic_store_n(&t->s[i].stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < NSTREAMS; i++) {
		if (t->s[i].running)
			pthread_join(t->s[i].thread, NULL);
		t->s[i].running = false;
	}
}

/* The first stream that failed, or NULL. */
static struct sodp_stream *traffic_failed(struct traffic *t)
{
	int i;

	for (i = 0; i < NSTREAMS; i++)
		if (t->s[i].err)
			return &t->s[i];
	return NULL;
}

static uint64_t traffic_min_iters(struct traffic *t)
{
	uint64_t n = UINT64_MAX, v;
	int i;

	for (i = 0; i < NSTREAMS; i++) {
		v = sodp_stream_iters(&t->s[i]);
		n = v < n ? v : n;
	}
	return n;
}

/* Wait (bounded) until every stream did @n more iterations, or failed. */
static void traffic_wait(struct traffic *t, uint64_t n, unsigned int max_ms)
{
	uint64_t want = traffic_min_iters(t) + n, end = now_ms() + max_ms;

	while (traffic_min_iters(t) < want && !traffic_failed(t) &&
	       now_ms() < end)
		sleep_ms(5);
}

/* One more checked iteration of every stream, from this thread. */
static void traffic_check(struct __test_metadata *_metadata,
			  struct traffic *t)
{
	int i;

	for (i = 0; i < NSTREAMS; i++) {
		struct sodp_stream *s = &t->s[i];

		ASSERT_EQ(0, sodp_stream_step(s, s->iters)) TH_LOG("%s", s->why);
		s->iters++;
	}
}

/* The nodes that have memory; returns how many (at most 2) were found. */
static int mem_nodes(int nodes[2])
{
	char buf[128], *p = buf, *end;
	int n = 0, a, b;
	FILE *f;

	f = fopen("/sys/devices/system/node/has_memory", "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	while (n < 2 && *p >= '0' && *p <= '9') {
		a = strtol(p, &end, 10);
		b = a;
		if (*end == '-')
			b = strtol(end + 1, &end, 10);
		for (; a <= b && n < 2; a++)
			nodes[n++] = a;
		p = *end == ',' ? end + 1 : end;
	}
	return n;
}

/*
 * Not a node number nor an errno: move_pages() did not write it (it stops
 * at a batch that failed to migrate and returns how many pages it left).
 */
#define STATUS_UNSET	INT_MIN

static long move_pages_raw(unsigned long n, void **pages, const int *nodes,
			   int *status)
{
	return syscall(SYS_move_pages, 0, n, pages, nodes, status,
		       MPOL_MF_MOVE);
}

/*
 * One migration round over all pages of @t: look up where each page is
 * and move it to the other node. moved[p] counts the rounds in which page
 * p's status says it arrived there. Returns -errno of move_pages() or the
 * number of pages not moved (after the kernel's own retries).
 */
static long traffic_migrate(struct traffic *t, const int nodes[2],
			    unsigned int *moved, int *last_status)
{
	size_t n = t->npages, p;
	int loc[n], target[n], status[n];
	void *pages[n];
	long ret;

	for (p = 0; p < n; p++)
		pages[p] = t->buf + p * PAGE_SZ;
	if (move_pages_raw(n, pages, NULL, loc))
		return -errno;
	for (p = 0; p < n; p++)
		target[p] = loc[p] == nodes[0] ? nodes[1] : nodes[0];
	for (p = 0; p < n; p++)
		status[p] = STATUS_UNSET;
	ret = move_pages_raw(n, pages, target, status);
	if (ret < 0)
		return -errno;
	for (p = 0; p < n; p++) {
		if (status[p] == target[p])
			moved[p]++;
		else
			*last_status = status[p];
	}
	return ret;
}

/*
 * Migrate every page of @t at least once (and at least 4 rounds) while
 * the streams run; 0 or -errno of move_pages(). *@nmoved: pages that
 * really moved at least once.
 */
static long traffic_migrate_all(struct traffic *t, const int nodes[2],
				unsigned int *rounds, size_t *nmoved)
{
	unsigned int moved[NSTREAMS * 3 * STREAM_PAGES] = { 0 };
	uint64_t end = now_ms() + MIGRATE_MS;
	int last_status = 0;
	size_t p;
	long ret;

	*rounds = 0;
	*nmoved = 0;
	if (t->npages > ARRAY_SIZE(moved))
		return -EINVAL;
	do {
		ret = traffic_migrate(t, nodes, moved, &last_status);
		if (ret < 0)
			return ret;
		++*rounds;
		for (*nmoved = 0, p = 0; p < t->npages; p++)
			*nmoved += moved[p] > 0;
		sleep_ms(10);
	} while ((*nmoved < t->npages || *rounds < 4) && !traffic_failed(t) &&
		 now_ms() < end);
	if (*nmoved < t->npages)
		fprintf(stderr, "# last failed move_pages status %d\n",
			last_status);
	return 0;
}

/*
 * move_pages() between two NUMA nodes of every page of one ODP MR while
 * two QPs run continuous RDMA WRITE + READ-back streams through it (each
 * stream's source, target and READ destination are in the MR), checking
 * every iteration's data (READ result and the CPU's view): no error,
 * every page really moved at least once (status == the other node), and
 * the MR's page_invalidations grew. Needs two nodes with memory
 * (numa=fake=2).
 */
static void move_pages_case(struct __test_metadata *_metadata,
			    struct odp_ctx *c)
{
	struct sodp_mr_stats st0, st1;
	unsigned int rounds = 0;
	struct traffic t;
	struct sodp_stream *bad;
	size_t nmoved = 0;
	const char *why;
	int nodes[2];
	long ret;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_SEND |
		       IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	if (mem_nodes(nodes) < 2)
		SKIP(return, "fewer than 2 NUMA nodes with memory");
	traffic_setup(_metadata, c, &t, STREAM_PAGES);
	mr_stats(_metadata, c, t.mr, &st0);

	traffic_start(_metadata, &t);
	traffic_wait(&t, 1, 10000);
	ret = traffic_migrate_all(&t, nodes, &rounds, &nmoved);
	traffic_wait(&t, 2, 10000);
	traffic_stop(&t);

	TH_LOG("%u move_pages rounds, %zu/%zu pages moved, %llu+%llu iterations",
	       rounds, nmoved, t.npages, (unsigned long long)t.s[0].iters,
	       (unsigned long long)t.s[1].iters);
	bad = traffic_failed(&t);
	ASSERT_EQ(NULL, bad) TH_LOG("%s", bad->why);
	ASSERT_EQ(0, ret) TH_LOG("move_pages: %s", strerror(-ret));
	ASSERT_EQ(t.npages, nmoved);
	ASSERT_LE(2ull, traffic_min_iters(&t));
	traffic_check(_metadata, &t);
	mr_stats(_metadata, c, t.mr, &st1);
	TH_LOG("MR: %llu invalidations, %llu recalls",
	       (unsigned long long)(st1.page_invalidations -
				    st0.page_invalidations),
	       (unsigned long long)(st1.cache_recalls - st0.cache_recalls));
	ASSERT_LT(st0.page_invalidations, st1.page_invalidations);
}

/* Migration under two WRITE + READ-back streams: see move_pages_case(). */
TEST_F_TIMEOUT(odp, move_pages_traffic, CASE_TIMEOUT)
{
	move_pages_case(_metadata, &self->c);
}

/*
 * move_pages_traffic with a 16-page cache per umem (the MR has 96 pages,
 * so leases are evicted and dirty ones trimmed all the time, racing with
 * the recalls of the migrations) and one-page faults.
 */
TEST_F_TIMEOUT(odp, move_pages_small_cache, CASE_TIMEOUT)
{
	ctx_param(_metadata, &self->c, CACHE_PAGES_PATH, 16);
	ctx_param(_metadata, &self->c, FAULT_AROUND_PATH, 1);
	move_pages_case(_metadata, &self->c);
}

#define COMPACT_PATH	"/proc/sys/vm/compact_memory"

/*
 * Writing 1 to compact_memory (three times) while the two WRITE +
 * READ-back streams of move_pages_traffic run through one ODP MR: every
 * iteration's data is right. Compaction may or may not move these pages;
 * how many invalidations it caused is logged.
 */
TEST_F_TIMEOUT(odp, compact_traffic, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	struct sodp_mr_stats st0, st1;
	int i, fd, werr = 0;
	struct sodp_stream *bad;
	struct traffic t;
	const char *why;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_SEND |
		       IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	if (access(COMPACT_PATH, W_OK))
		SKIP(return, "no %s: %s", COMPACT_PATH, strerror(errno));
	traffic_setup(_metadata, c, &t, STREAM_PAGES);
	mr_stats(_metadata, c, t.mr, &st0);

	traffic_start(_metadata, &t);
	traffic_wait(&t, 1, 10000);
	for (i = 0; i < 3 && !werr; i++) {
		fd = open(COMPACT_PATH, O_WRONLY);
		if (fd < 0 || write(fd, "1", 1) != 1)
			werr = errno;
		if (fd >= 0)
			close(fd);
		traffic_wait(&t, 1, 10000);
	}
	traffic_stop(&t);

	bad = traffic_failed(&t);
	ASSERT_EQ(NULL, bad) TH_LOG("%s", bad->why);
	ASSERT_EQ(0, werr) TH_LOG("compact_memory: %s", strerror(werr));
	ASSERT_LE(3ull, traffic_min_iters(&t));
	traffic_check(_metadata, &t);
	mr_stats(_metadata, c, t.mr, &st1);
	TH_LOG("%llu+%llu iterations; MR: %llu invalidations",
	       (unsigned long long)t.s[0].iters,
	       (unsigned long long)t.s[1].iters,
	       (unsigned long long)(st1.page_invalidations -
				    st0.page_invalidations));
}

/* ---- The pinned cache is a lease, not a pin -------------------------- */

/*
 * Every page of @t moves to the other node within @bound_ms: one
 * move_pages() call for all of them, then again for those that did not
 * move. sodp holds no lease any more, but a copy in flight may still
 * hold a transient reference (siw's transmit path while it copies a page
 * into the socket). Such a page fails with a transient error
 * (-EBUSY/-EAGAIN), never for good: sodp pages never reach TCP.
 */
static void migrate_all_within(struct __test_metadata *_metadata,
			       struct traffic *t, const int nodes[2],
			       uint64_t bound_ms)
{
	int loc[t->npages], target[t->npages], status[t->npages];
	uint64_t start = now_ms();
	void *pages[t->npages];
	unsigned int calls = 0;
	size_t p, n, left;
	long ret;

	for (p = 0; p < t->npages; p++)
		pages[p] = t->buf + p * PAGE_SZ;
	ASSERT_EQ(0, move_pages_raw(t->npages, pages, NULL, loc));
	for (p = 0; p < t->npages; p++)
		target[p] = loc[p] == nodes[0] ? nodes[1] : nodes[0];
	n = t->npages;
	for (;;) {
		/*
		 * A batch that fails to migrate makes move_pages() return the
		 * number of pages it did not move and leave their status, and
		 * that of the pages after them, unwritten.
		 */
		for (p = 0; p < n; p++)
			status[p] = STATUS_UNSET;
		ret = move_pages_raw(n, pages, target, status);
		calls++;
		ASSERT_LE(0, ret) TH_LOG("move_pages: %s", strerror(errno));
		for (p = 0, left = 0; p < n; p++) {
			if (status[p] == target[p])
				continue;
			ASSERT_TRUE(status[p] == -EBUSY ||
				    status[p] == -EAGAIN ||
				    (ret > 0 && status[p] == STATUS_UNSET))
				TH_LOG("page %p: status %d (move_pages: %ld)",
				       pages[p], status[p], ret);
			pages[left] = pages[p];
			target[left] = target[p];
			left++;
		}
		if (!left)
			break;
		ASSERT_GE(bound_ms, now_ms() - start)
			TH_LOG("%zu pages still not moved after %u calls",
			       left, calls);
		n = left;
		sleep_ms(10);
	}
	TH_LOG("every page moved: %u move_pages() calls in %llu ms", calls,
	       (unsigned long long)(now_ms() - start));
}

/*
 * The fast-path cache never becomes a pin:
 * 1. while the two streams run (every page leased again and again),
 *    every page of the MR migrates at least once;
 * 2. once they stop, debugfs pages_held drops to 0 within the documented
 *    aging bound (1.5 x cache_idle_ms + workqueue latency; we allow
 *    3 x cache_idle_ms + DRAIN_SLACK_MS);
 * 3. then every page migrates within DRAIN_SLACK_MS (a transient
 *    reference of a copy in flight may delay one);
 * 4. after a few more iterations (pages held again), destroying the MR
 *    and the connections leaves umems == 0 and pages_held == 0 at once.
 */
TEST_F_TIMEOUT(odp, cache_is_a_lease, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	uint64_t start, waited, bound;
	int64_t held = -1, umems;
	unsigned int rounds = 0;
	struct sodp_stream *bad;
	struct traffic t;
	size_t nmoved = 0;
	const char *why;
	long idle, ret;
	int nodes[2];

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_SEND |
		       IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	if (mem_nodes(nodes) < 2)
		SKIP(return, "fewer than 2 NUMA nodes with memory");
	idle = read_long(CACHE_IDLE_PATH);
	ASSERT_LT(0, idle) TH_LOG("no %s", CACHE_IDLE_PATH);
	bound = 3 * idle + DRAIN_SLACK_MS;
	traffic_setup(_metadata, c, &t, STREAM_PAGES);

	traffic_start(_metadata, &t);
	traffic_wait(&t, 1, 10000);
	ret = traffic_migrate_all(&t, nodes, &rounds, &nmoved);
	traffic_stop(&t);
	TH_LOG("under traffic: %u rounds, %zu/%zu pages moved", rounds,
	       nmoved, t.npages);
	bad = traffic_failed(&t);
	ASSERT_EQ(NULL, bad) TH_LOG("%s", bad->why);
	ASSERT_EQ(0, ret) TH_LOG("move_pages: %s", strerror(-ret));
	ASSERT_EQ(t.npages, nmoved);

	start = now_ms();
	do {
		held = dbg_get(_metadata, "pages_held");
		if (!held)
			break;
		sleep_ms(10);
	} while (now_ms() - start <= 10 * bound);
	waited = now_ms() - start;
	TH_LOG("pages_held %lld after %llu ms (bound %llu ms)",
	       (long long)held, (unsigned long long)waited,
	       (unsigned long long)bound);
	ASSERT_EQ(0, held);
	ASSERT_GE(bound, waited);
	migrate_all_within(_metadata, &t, nodes, DRAIN_SLACK_MS);

	traffic_check(_metadata, &t);
	held = dbg_get(_metadata, "pages_held");
	ASSERT_EQ(0, sodp_mr_dereg(&c->mr[0]));
	sodp_pair_destroy(&c->pair);
	sodp_pair_destroy(&c->xpair);
	umems = dbg_get(_metadata, "umems");
	TH_LOG("pages_held %lld before destroy, %lld after; umems %lld",
	       (long long)held, (long long)dbg_get(_metadata, "pages_held"),
	       (long long)umems);
	ASSERT_EQ(0, umems);
	ASSERT_EQ(0, dbg_get(_metadata, "pages_held"));
}

/* ---- Shared file mappings -------------------------------------------- */

#define FILE_PAGES	64

/*
 * An unlinked file in @dir on a file system with @magic, holding @image,
 * fsync()ed and (ext4) dropped from the page cache; its fd is in slot 0.
 */
static int file_create(struct __test_metadata *_metadata, struct odp_ctx *c,
		       const char *dir, long magic, const void *image,
		       size_t len)
{
	struct statfs sfs;
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/sodp_odp.XXXXXX", dir);
	fd = mkstemp(path);
	ASSERT_LE(0, fd) TH_LOG("mkstemp(%s): %s", path, strerror(errno));
	c->fd[0] = fd;
	ASSERT_EQ(0, unlink(path));
	ASSERT_EQ(0, fstatfs(fd, &sfs));
	ASSERT_EQ(magic, (long)sfs.f_type);
	ASSERT_EQ((ssize_t)len, pwrite(fd, image, len, 0));
	ASSERT_EQ(0, fsync(fd));
	if (magic == EXT4_SUPER_MAGIC)
		ASSERT_EQ(0, posix_fadvise(fd, 0, len, POSIX_FADV_DONTNEED));
	return fd;
}

/*
 * A MAP_SHARED file mapping under an ODP MR ($SODP_TMPFS_DIR on tmpfs,
 * $SODP_EXT4_DIR on ext4). The file is written with pwrite() and fsync()ed
 * before it is mapped (on ext4 also dropped from the page cache, so the
 * first access reads the disk). An RDMA READ returns that content; RDMA
 * WRITEs into pages only read so far (write upgrade: page_mkwrite) and
 * into untouched pages show through the mapping; after fsync() they are on
 * disk while still mapped (ext4: O_DIRECT read), and after munmap() under
 * the live MR, fsync() and (ext4) dropping the cache, pread() returns
 * them: the pages were dirtied before sodp let go of them.
 */
static void file_case(struct __test_metadata *_metadata, struct odp_ctx *c,
		      const char *env, long magic)
{
	const char *dir = getenv(env);
	const size_t P = PAGE_SZ, flen = FILE_PAGES * P;
	const size_t roff = 3 * P + 17, rlen = 20 * P + 5;
	const size_t w1off = 10 * P + 1, w1len = 100;
	const size_t w2off = 30 * P + 4000, w2len = 20 * P + 3;
	uint64_t fseed = c->seed ^ 0xf11e, wseed = c->seed;
	bool ext4 = magic == EXT4_SUPER_MAGIC;
	uint8_t *image, *map, *src, *dst, *back;
	struct ibv_mr *mr, *smr, *dmr;
	char fdpath[64];
	const char *why;
	void *dio;
	int fd, dfd;

	if (!dir || !*dir)
		SKIP(return, "%s is not set", env);
	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE |
		       IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);

	image = slot_anon(_metadata, c, 3, flen, 0);
	back = slot_anon(_metadata, c, 4, flen, 0);
	sodp_pattern_fill(image, flen, fseed, 0);
	fd = file_create(_metadata, c, dir, magic, image, flen);

	map = mmap(NULL, flen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, map);
	c->map[0] = map;
	c->map_len[0] = flen;
	src = slot_anon(_metadata, c, 1, w2len + 200, 0);
	sodp_pattern_fill(src, w2len + 200, wseed, 0);
	dst = slot_anon(_metadata, c, 2, rlen, SENT_LOCAL);
	mr = slot_reg(_metadata, c, 0, map, flen, ODP_RW);
	smr = slot_reg(_metadata, c, 1, src, w2len + 200,
		       IBV_ACCESS_LOCAL_WRITE);
	dmr = slot_reg(_metadata, c, 2, dst, rlen, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	rdma_read(_metadata, c, dst, rlen, dmr->lkey, (uintptr_t)map + roff,
		  mr->rkey);
	ASSERT_PATTERN(dst, rlen, fseed, roff);

	rdma_write(_metadata, c, src, w1len, smr->lkey,
		   (uintptr_t)map + w1off, mr->rkey);
	rdma_write(_metadata, c, src + 200, w2len, smr->lkey,
		   (uintptr_t)map + w2off, mr->rkey);
	sodp_pattern_fill(image + w1off, w1len, wseed, 0);
	sodp_pattern_fill(image + w2off, w2len, wseed, 200);
	ASSERT_SAME(map, image, flen);

	ASSERT_EQ(0, fsync(fd));
	if (ext4) {
		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
		dfd = open(fdpath, O_RDONLY | O_DIRECT);
		ASSERT_LE(0, dfd) TH_LOG("O_DIRECT: %s", strerror(errno));
		ASSERT_EQ(0, posix_memalign(&dio, P, flen));
		memset(dio, 0, flen);
		ASSERT_EQ((ssize_t)flen, pread(dfd, dio, flen, 0));
		close(dfd);
		memcpy(back, dio, flen);
		free(dio);
		ASSERT_SAME(back, image, flen);
	}

	ASSERT_EQ(0, munmap(map, flen));
	c->map[0] = NULL;
	ASSERT_EQ(0, fsync(fd));
	if (ext4)
		ASSERT_EQ(0, posix_fadvise(fd, 0, flen, POSIX_FADV_DONTNEED));
	memset(back, 0, flen);
	ASSERT_EQ((ssize_t)flen, pread(fd, back, flen, 0));
	ASSERT_SAME(back, image, flen);
}

/* MAP_SHARED tmpfs file under an ODP MR: see file_case(). */
TEST_F_TIMEOUT(odp, tmpfs_file, CASE_TIMEOUT)
{
	file_case(_metadata, &self->c, "SODP_TMPFS_DIR", TMPFS_MAGIC);
}

/* MAP_SHARED ext4 (page cache) file under an ODP MR: see file_case(). */
TEST_F_TIMEOUT(odp, ext4_file, CASE_TIMEOUT)
{
	file_case(_metadata, &self->c, "SODP_EXT4_DIR", EXT4_SUPER_MAGIC);
}

/*
 * ext4_file with a 16-page cache (the 21-page WRITE leaves more dirty
 * leases than fit: they are trimmed, i.e. dirtied and released while
 * mapped) and 512-page fault windows (clipped to the file's VMA).
 */
TEST_F_TIMEOUT(odp, ext4_file_small_cache, CASE_TIMEOUT)
{
	ctx_param(_metadata, &self->c, CACHE_PAGES_PATH, 16);
	ctx_param(_metadata, &self->c, FAULT_AROUND_PATH, 512);
	file_case(_metadata, &self->c, "SODP_EXT4_DIR", EXT4_SUPER_MAGIC);
}

#define TR_PAGES	16

/*
 * ftruncate() of a MAP_SHARED file to half its size under a live ODP MR
 * whose pages were all mirrored and cached by a READ, one of them beyond
 * the new end also written (a dirty cache entry): an RDMA READ and an
 * RDMA WRITE beyond the new end are refused (the CPU would get SIGBUS),
 * so neither the stale pages nor a stale cache entry are used; the size
 * stays what ftruncate() set and, extended again, the file reads zeros
 * there. Below the new end the MR keeps working.
 */
static void truncate_case(struct __test_metadata *_metadata,
			  struct odp_ctx *c, const char *env, long magic)
{
	const char *dir = getenv(env);
	const size_t P = PAGE_SZ, flen = TR_PAGES * P, half = flen / 2;
	uint64_t fseed = c->seed ^ 0xf11e, wseed = c->seed;
	uint8_t *image, *map, *l, *dst;
	struct ibv_mr *mr, *lmr;
	const char *why;
	struct stat st;
	int fd;

	if (!dir || !*dir)
		SKIP(return, "%s is not set", env);
	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE |
		       IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	image = slot_anon(_metadata, c, 3, flen, 0);
	sodp_pattern_fill(image, flen, fseed, 0);
	fd = file_create(_metadata, c, dir, magic, image, flen);
	map = mmap(NULL, flen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, map);
	c->map[0] = map;
	c->map_len[0] = flen;
	l = slot_anon(_metadata, c, 1, 2 * flen, SENT_LOCAL);
	sodp_pattern_fill(l, 64, wseed, 0);
	dst = l + flen;
	mr = slot_reg(_metadata, c, 0, map, flen, ODP_RW);
	lmr = slot_reg(_metadata, c, 1, l, 2 * flen, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	rdma_read(_metadata, c, dst, flen, lmr->lkey, (uintptr_t)map,
		  mr->rkey);
	ASSERT_PATTERN(dst, flen, fseed, 0);
	rdma_write(_metadata, c, l, 64, lmr->lkey,
		   (uintptr_t)map + 12 * P + 8, mr->rkey);
	ASSERT_PATTERN(map + 12 * P + 8, 64, wseed, 0);

	ASSERT_EQ(0, ftruncate(fd, half));
	memset(dst, SENT_LOCAL, flen);
	rdma_refused(_metadata, c, IBV_WR_RDMA_READ, dst, 64, lmr->lkey,
		     (uintptr_t)map + 12 * P, mr->rkey);
	ASSERT_BYTES(dst, flen, SENT_LOCAL);
	rdma_refused(_metadata, c, IBV_WR_RDMA_WRITE, l, 64, lmr->lkey,
		     (uintptr_t)map + 10 * P + 100, mr->rkey);
	ASSERT_EQ(0, fstat(fd, &st));
	ASSERT_EQ((off_t)half, st.st_size);

	ctx_connect(_metadata, c);
	rdma_read(_metadata, c, dst, half, lmr->lkey, (uintptr_t)map,
		  mr->rkey);
	ASSERT_PATTERN(dst, half, fseed, 0);
	rdma_write(_metadata, c, l, 64, lmr->lkey,
		   (uintptr_t)map + half - 64, mr->rkey);
	ASSERT_PATTERN(map + half - 64, 64, wseed, 0);

	ASSERT_EQ(0, ftruncate(fd, flen));
	memset(image, SENT_LOCAL, flen);
	ASSERT_EQ((ssize_t)half, pread(fd, image, half, half));
	ASSERT_BYTES(image, half, 0);
}

/* ftruncate() of a tmpfs file under an ODP MR: see truncate_case(). */
TEST_F_TIMEOUT(odp, tmpfs_truncate, CASE_TIMEOUT)
{
	truncate_case(_metadata, &self->c, "SODP_TMPFS_DIR", TMPFS_MAGIC);
}

/* ftruncate() of an ext4 file under an ODP MR: see truncate_case(). */
TEST_F_TIMEOUT(odp, ext4_truncate, CASE_TIMEOUT)
{
	truncate_case(_metadata, &self->c, "SODP_EXT4_DIR", EXT4_SUPER_MAGIC);
}

/* ---- Implicit ODP and prefetch --------------------------------------- */

/* mmap() near @hint if the kernel takes the hint, cold, in slot @i. */
static uint8_t *slot_anon_near(struct __test_metadata *_metadata,
			       struct odp_ctx *c, int i, size_t len,
			       uintptr_t hint)
{
	void *p = mmap((void *)(hint & ~(HPAGE_SZ - 1)), len,
		       PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	ASSERT_NE(MAP_FAILED, p);
	c->map[i] = p;
	c->map_len[i] = len;
	return p;
}

/*
 * A range of @len bytes that nothing is mapped in and that mmap() will not
 * hand out meanwhile (the libraries map QP rings, CQs and buffers while a
 * case runs): 1 TiB above the heap, far below where the mmap area grows
 * down from. Checked free with MAP_FIXED_NOREPLACE; the cold mapping is
 * kept in slot @i.
 */
static uint8_t *slot_anon_far(struct __test_metadata *_metadata,
			      struct odp_ctx *c, int i, size_t len)
{
	uintptr_t hint = round_up((uintptr_t)sbrk(0) + 1024 * GIB, HPAGE_SZ);
	void *p = mmap((void *)hint, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
		       MAP_FIXED_NOREPLACE, -1, 0);

	ASSERT_EQ((void *)hint, p) TH_LOG("mmap at %#lx: %s",
					  (unsigned long)hint,
					  strerror(errno));
	c->map[i] = p;
	c->map_len[i] = len;
	return p;
}

/*
 * Implicit ODP: one MR registered with (NULL, SIZE_MAX, ON_DEMAND) covers
 * the whole address space. Its lkey and rkey with the buffers' own
 * addresses: an RDMA WRITE of 1 MiB + 7 from a plain-looking source
 * buffer into a cold buffer far away (across a 2 MiB boundary, so two
 * implicit children), then an RDMA READ of it into a third, distant
 * cold buffer; data and the zeros around it are checked, the MR counted
 * page faults.
 */
TEST_F_TIMEOUT(odp, implicit_write_read, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t wl = MIB + 7, woff = 2 * MIB - 1000, roff = 4093;
	struct sodp_mr_stats st;
	uint8_t *a, *b, *d;
	struct ibv_mr *imr;
	const char *why;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_SEND |
		       IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ, true);
	if (why)
		SKIP(return, "%s", why);
	imr = slot_reg(_metadata, c, 0, NULL, SIZE_MAX, ODP_RW);
	a = slot_anon(_metadata, c, 1, 2 * MIB, SENT_LOCAL);
	sodp_pattern_fill(a + 100, wl, c->seed, 0);
	b = slot_anon_near(_metadata, c, 2, 4 * MIB,
			   (uintptr_t)a + 512 * GIB);
	d = slot_anon_near(_metadata, c, 3, 2 * MIB,
			   (uintptr_t)a - 256 * GIB);
	TH_LOG("buffers at %p, %p, %p", a, b, d);
	ctx_connect(_metadata, c);

	rdma_write(_metadata, c, a + 100, wl, imr->lkey, (uintptr_t)b + woff,
		   imr->rkey);
	expect_region(_metadata, b, 4 * MIB, woff, wl, c->seed, 0, 0);
	rdma_read(_metadata, c, d + roff, wl, imr->lkey, (uintptr_t)b + woff,
		  imr->rkey);
	expect_region(_metadata, d, 2 * MIB, roff, wl, c->seed, 0, 0);
	expect_region(_metadata, a, 2 * MIB, 100, wl, c->seed, 0, SENT_LOCAL);
	mr_stats(_metadata, c, imr, &st);
	ASSERT_LT(0ull, st.page_faults);
}

#define PF_PAGES	64

/*
 * ibv_advise_mr(PREFETCH_WRITE, FLUSH) of a cold range of an explicit or
 * implicit ODP MR: page_prefetch grows, pages_faulted grows by at least
 * the range's pages, page_faults does not; the RDMA WRITE that follows
 * into exactly that range causes no page fault at all and is verified.
 */
static void prefetch_case(struct __test_metadata *_metadata,
			  struct odp_ctx *c, bool implicit)
{
	const size_t len = PF_PAGES * PAGE_SZ;
	struct sodp_mr_stats st0, st1, st2;
	struct ibv_mr *mr, *smr;
	uint8_t *t, *src;
	const char *why;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE, implicit);
	if (why)
		SKIP(return, "%s", why);
	t = slot_anon(_metadata, c, 0, len, -1);
	ASSERT_EQ(0, madvise(t, len, MADV_NOHUGEPAGE));
	src = slot_anon(_metadata, c, 1, len, 0);
	sodp_pattern_fill(src, len, c->seed, 0);
	if (implicit)
		mr = slot_reg(_metadata, c, 0, NULL, SIZE_MAX, ODP_RW);
	else
		mr = slot_reg(_metadata, c, 0, t, len, ODP_RW);
	smr = slot_reg(_metadata, c, 1, src, len, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	mr_stats(_metadata, c, mr, &st0);
	ASSERT_EQ(0, advise(mr, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
			    IBV_ADVISE_MR_FLAG_FLUSH, t, len));
	mr_stats(_metadata, c, mr, &st1);
	TH_LOG("prefetch: %llu prefetches, %llu pages faulted, %llu faults",
	       (unsigned long long)(st1.page_prefetch - st0.page_prefetch),
	       (unsigned long long)(st1.pages_faulted - st0.pages_faulted),
	       (unsigned long long)(st1.page_faults - st0.page_faults));
	ASSERT_LT(st0.page_prefetch, st1.page_prefetch);
	ASSERT_LE(st0.pages_faulted + PF_PAGES, st1.pages_faulted);
	ASSERT_EQ(st0.page_faults, st1.page_faults);

	rdma_write(_metadata, c, src, len, smr->lkey, (uintptr_t)t,
		   mr->rkey);
	mr_stats(_metadata, c, mr, &st2);
	/*
	 * The WRITE needs no fault, unless the mm took some of the pages
	 * back in between (NUMA balancing, khugepaged): then invalidations
	 * must show it.
	 */
	if (st1.page_faults != st2.page_faults)
		ASSERT_LT(st1.page_invalidations, st2.page_invalidations)
			TH_LOG("%llu faults after the prefetch, no invalidation",
			       (unsigned long long)(st2.page_faults -
						    st1.page_faults));
	ASSERT_PATTERN(t, len, c->seed, 0);
}

/* Prefetch then WRITE on an explicit ODP MR: see prefetch_case(). */
TEST_F_TIMEOUT(odp, prefetch_write, CASE_TIMEOUT)
{
	prefetch_case(_metadata, &self->c, false);
}

/* Prefetch then WRITE on the implicit ODP MR: see prefetch_case(). */
TEST_F_TIMEOUT(odp, prefetch_write_implicit, CASE_TIMEOUT)
{
	prefetch_case(_metadata, &self->c, true);
}

/*
 * PREFETCH_NO_FAULT only mirrors what is present: on an ODP MR over 4
 * CPU-touched pages, a 4-page hole (munmap) and 4 cold pages, advising the
 * hole succeeds and mirrors nothing, advising the whole MR mirrors exactly
 * the 4 present pages; neither faults (page_faults unchanged) and the cold
 * pages stay unpopulated. A faulting PREFETCH of the hole fails with
 * EFAULT. On the implicit MR (if supported) NO_FAULT over the hole
 * succeeds without mirroring or faulting either.
 */
TEST_F_TIMEOUT(odp, prefetch_no_fault_hole, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, len = 12 * P;
	struct sodp_mr_stats st0, st1, st2;
	struct ibv_mr *mr, *imr;
	unsigned char vec[4];
	const char *why;
	uint8_t *m;
	int i;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE, false);
	if (why)
		SKIP(return, "%s", why);
	m = slot_anon_far(_metadata, c, 0, len);
	ASSERT_EQ(0, madvise(m, len, MADV_NOHUGEPAGE));
	memset(m, SENT_DST, 4 * P);
	ASSERT_EQ(0, munmap(m + 4 * P, 4 * P));
	mr = slot_reg(_metadata, c, 0, m, len, ODP_RW);

	mr_stats(_metadata, c, mr, &st0);
	ASSERT_EQ(0, advise(mr, IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT,
			    IBV_ADVISE_MR_FLAG_FLUSH, m + 4 * P, 4 * P));
	mr_stats(_metadata, c, mr, &st1);
	ASSERT_EQ(st0.page_faults, st1.page_faults);
	ASSERT_EQ(st0.pages_faulted, st1.pages_faulted);
	ASSERT_EQ(0ull, st1.pages_mirrored);

	ASSERT_EQ(0, advise(mr, IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT,
			    IBV_ADVISE_MR_FLAG_FLUSH, m, len));
	mr_stats(_metadata, c, mr, &st2);
	ASSERT_EQ(st0.page_faults, st2.page_faults);
	ASSERT_EQ(4ull, st2.pages_mirrored);
	ASSERT_EQ(st1.pages_faulted + 4, st2.pages_faulted);

	ASSERT_EQ(EFAULT, advise(mr, IBV_ADVISE_MR_ADVICE_PREFETCH,
				 IBV_ADVISE_MR_FLAG_FLUSH, m + 4 * P, 4 * P));
	ASSERT_EQ(0, mincore(m + 8 * P, 4 * P, vec));
	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, vec[i] & 1) TH_LOG("cold page %d is resident", i);
	ASSERT_BYTES(m, 4 * P, SENT_DST);

	if (!(c->dev.odp.general_caps & IBV_ODP_SUPPORT_IMPLICIT))
		return;
	imr = slot_reg(_metadata, c, 1, NULL, SIZE_MAX, ODP_RW);
	ASSERT_EQ(0, advise(imr, IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT,
			    IBV_ADVISE_MR_FLAG_FLUSH, m + 4 * P, 4 * P));
	mr_stats(_metadata, c, imr, &st1);
	ASSERT_EQ(0ull, st1.page_faults);
	ASSERT_EQ(0ull, st1.pages_mirrored);
}

/*
 * ibv_advise_mr on a plain (non-ODP) MR fails with EINVAL for every
 * advice, with and without FLUSH; so does a range outside an ODP MR.
 */
TEST_F(odp, advise_non_odp)
{
	struct odp_ctx *c = &self->c;
	struct ibv_mr *pmr, *omr;
	const char *why;
	uint8_t *p;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE, false);
	if (why)
		SKIP(return, "%s", why);
	p = slot_anon(_metadata, c, 0, 2 * PAGE_SZ, 0);
	pmr = slot_reg(_metadata, c, 0, p, 2 * PAGE_SZ, SODP_ACCESS_RW);
	ASSERT_EQ(EINVAL, advise(pmr, IBV_ADVISE_MR_ADVICE_PREFETCH,
				 IBV_ADVISE_MR_FLAG_FLUSH, p, PAGE_SZ));
	ASSERT_EQ(EINVAL, advise(pmr, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, 0,
				 p, PAGE_SZ));
	ASSERT_EQ(EINVAL, advise(pmr, IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT,
				 IBV_ADVISE_MR_FLAG_FLUSH, p, PAGE_SZ));

	omr = slot_reg(_metadata, c, 1, p, PAGE_SZ, ODP_RW);
	ASSERT_EQ(EINVAL, advise(omr, IBV_ADVISE_MR_ADVICE_PREFETCH,
				 IBV_ADVISE_MR_FLAG_FLUSH, p + PAGE_SZ / 2,
				 PAGE_SZ));
	ASSERT_EQ(0, advise(omr, IBV_ADVISE_MR_ADVICE_PREFETCH,
			    IBV_ADVISE_MR_FLAG_FLUSH, p, PAGE_SZ));
}

#define APF_ROUNDS	8
#define APF_LEN		(8 * MIB)

/*
 * Asynchronous prefetch (no FLUSH) of 8 MiB of cold 4 KiB pages, then at
 * once ibv_dereg_mr() (and, every other round, munmap() first): dereg
 * succeeds, nothing splats (the guest runner fails on any WARN), and once
 * the work items are done debugfs shows no umem and no page held.
 */
TEST_F_TIMEOUT(odp, async_prefetch_dereg, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	int64_t umems = -1, held = -1;
	struct ibv_mr *mr;
	const char *why;
	uint64_t end;
	uint8_t *m;
	int i;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE, false);
	if (why)
		SKIP(return, "%s", why);
	for (i = 0; i < APF_ROUNDS; i++) {
		m = slot_anon(_metadata, c, 0, APF_LEN, -1);
		ASSERT_EQ(0, madvise(m, APF_LEN, MADV_NOHUGEPAGE));
		mr = slot_reg(_metadata, c, 0, m, APF_LEN, ODP_RW);
		ASSERT_EQ(0, advise(mr, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
				    0, m, APF_LEN));
		if (i & 1) {
			ASSERT_EQ(0, munmap(m, APF_LEN));
			c->map[0] = NULL;
		}
		ASSERT_EQ(0, sodp_mr_dereg(&c->mr[0]));
		ctx_slot_release(c, 0);
	}
	end = now_ms() + 5000;
	do {
		umems = dbg_get(_metadata, "umems");
		held = dbg_get(_metadata, "pages_held");
		if (!umems && !held)
			break;
		sleep_ms(20);
	} while (now_ms() < end);
	ASSERT_EQ(0, umems);
	ASSERT_EQ(0, held);
}

/* ---- Bad input on ODP MRs -------------------------------------------- */

/*
 * RDMA WRITEs of 64 bytes into an ODP MR that covers the first page of a
 * two-page mapping (the second page cold): one that starts 32 bytes
 * before the MR's end and one that starts at it are refused (see
 * rdma_refused()) and write nothing, in the MR or past it. The MR itself
 * keeps working on a fresh connection. The same at byte granularity on
 * an ODP MR of [t + 100, t + 1100): WRITEs across either end are refused,
 * the rest of its page untouched.
 */
TEST_F_TIMEOUT(odp, write_beyond_end, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, len = 64;
	struct ibv_mr *mr, *smr;
	uint8_t *t, *src;
	const char *why;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE, false);
	if (why)
		SKIP(return, "%s", why);
	t = slot_anon(_metadata, c, 0, 2 * P, -1);
	memset(t, SENT_DST, P);
	src = slot_anon(_metadata, c, 1, P, 0);
	sodp_pattern_fill(src, len, c->seed, 0);
	mr = slot_reg(_metadata, c, 0, t, P, ODP_RW);
	smr = slot_reg(_metadata, c, 1, src, P, IBV_ACCESS_LOCAL_WRITE);

	rdma_refused(_metadata, c, IBV_WR_RDMA_WRITE, src, len, smr->lkey,
		     (uintptr_t)t + P - len / 2, mr->rkey);
	rdma_refused(_metadata, c, IBV_WR_RDMA_WRITE, src, len, smr->lkey,
		     (uintptr_t)t + P, mr->rkey);
	ASSERT_BYTES(t, P, SENT_DST);
	ASSERT_BYTES(t + P, P, 0);

	ctx_connect(_metadata, c);
	rdma_write(_metadata, c, src, len, smr->lkey,
		   (uintptr_t)t + P - len, mr->rkey);
	expect_region(_metadata, t, P, P - len, len, c->seed, 0, SENT_DST);

	/* Bounds are bytes, not pages: an MR of [t + 100, t + 1100). */
	memset(t, SENT_DST, P);
	mr = slot_reg(_metadata, c, 2, t + 100, 1000, ODP_RW);
	rdma_refused(_metadata, c, IBV_WR_RDMA_WRITE, src, len, smr->lkey,
		     (uintptr_t)t + 1100 - len / 2, mr->rkey);
	rdma_refused(_metadata, c, IBV_WR_RDMA_WRITE, src, len, smr->lkey,
		     (uintptr_t)t + 100 - len / 2, mr->rkey);
	ASSERT_BYTES(t, P, SENT_DST);
	ctx_connect(_metadata, c);
	rdma_write(_metadata, c, src, len, smr->lkey,
		   (uintptr_t)t + 1100 - len, mr->rkey);
	expect_region(_metadata, t, P, 1100 - len, len, c->seed, 0, SENT_DST);
}

/*
 * RDMA WRITE and READ whose remote address + length overflows u64
 * (UINT64_MAX - 31, 64 bytes) on an explicit ODP MR and on the implicit
 * one, and (implicit MR) to kernel addresses, which are inside its
 * [0, UINT64_MAX) range but outside the user address space: each is
 * refused with an error completion, nothing is written in the MR, nothing
 * is placed in the READ's local buffer, and nothing splats.
 */
TEST_F_TIMEOUT(odp, iova_overflow, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const uint64_t wrap = UINT64_MAX - 31;
	const uint64_t ktext = 0xffffffff81000000ull;
	const uint64_t kdirect = 0xffff888000000000ull;
	const size_t P = PAGE_SZ, len = 64;
	struct ibv_mr *mr, *lmr, *imr;
	uint8_t *t, *l, *rd;
	const char *why;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE |
		       IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	t = slot_anon(_metadata, c, 0, P, SENT_DST);
	l = slot_anon(_metadata, c, 1, P, SENT_LOCAL);
	sodp_pattern_fill(l, len, c->seed, 0);
	rd = l + P / 2;
	mr = slot_reg(_metadata, c, 0, t, P, ODP_RW);
	lmr = slot_reg(_metadata, c, 1, l, P, IBV_ACCESS_LOCAL_WRITE);

	rdma_refused(_metadata, c, IBV_WR_RDMA_WRITE, l, len, lmr->lkey,
		     wrap, mr->rkey);
	rdma_refused(_metadata, c, IBV_WR_RDMA_READ, rd, len, lmr->lkey,
		     wrap, mr->rkey);
	if (c->dev.odp.general_caps & IBV_ODP_SUPPORT_IMPLICIT) {
		imr = slot_reg(_metadata, c, 2, NULL, SIZE_MAX, ODP_RW);
		rdma_refused(_metadata, c, IBV_WR_RDMA_WRITE, l, len,
			     lmr->lkey, wrap, imr->rkey);
		rdma_refused(_metadata, c, IBV_WR_RDMA_READ, rd, len,
			     lmr->lkey, wrap, imr->rkey);
		rdma_refused(_metadata, c, IBV_WR_RDMA_WRITE, l, len,
			     lmr->lkey, ktext, imr->rkey);
		rdma_refused(_metadata, c, IBV_WR_RDMA_READ, rd, len,
			     lmr->lkey, kdirect, imr->rkey);
	}
	ASSERT_BYTES(t, P, SENT_DST);
	ASSERT_PATTERN(l, len, c->seed, 0);
	ASSERT_BYTES(l + len, P - len, SENT_LOCAL);
}

/*
 * An ODP MR registered at an iova other than its address
 * (ibv_reg_mr_iova()): remote addresses are iovas. An RDMA WRITE of
 * 3 pages + 5 at iova + P + 7 into the cold MR lands at addr + P + 7, a
 * READ from there returns it; the buffer's own address (outside the iova
 * range) and a WRITE across the end of the iova range are refused and
 * write nothing.
 */
TEST_F_TIMEOUT(odp, iova_offset, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, len = 8 * P, off = P + 7, wl = 3 * P + 5;
	const uint64_t iova = 1ull << 56;
	struct ibv_mr *mr, *lmr;
	const char *why;
	uint8_t *buf, *l;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE |
		       IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	buf = slot_anon(_metadata, c, 0, len, -1);
	l = slot_anon(_metadata, c, 1, 2 * len, SENT_LOCAL);
	sodp_pattern_fill(l, wl, c->seed, 0);
	mr = ibv_reg_mr_iova(c->dev.pd, buf, len, iova, ODP_RW);
	/* siw addresses MRs by virtual address and refuses another iova. */
	if (!mr && c->dev.iwarp && errno == EOPNOTSUPP)
		SKIP(return, "%s: no MR iova other than its address",
		     c->dev.name);
	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_mr_iova: %s", strerror(errno));
	c->mr[0] = mr;
	lmr = slot_reg(_metadata, c, 1, l, 2 * len, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	rdma_write(_metadata, c, l, wl, lmr->lkey, iova + off, mr->rkey);
	expect_region(_metadata, buf, len, off, wl, c->seed, 0, 0);
	rdma_read(_metadata, c, l + len, wl, lmr->lkey, iova + off,
		  mr->rkey);
	ASSERT_PATTERN(l + len, wl, c->seed, 0);

	rdma_refused(_metadata, c, IBV_WR_RDMA_WRITE, l, 64, lmr->lkey,
		     (uintptr_t)buf + off, mr->rkey);
	rdma_refused(_metadata, c, IBV_WR_RDMA_WRITE, l, 64, lmr->lkey,
		     iova + len - 32, mr->rkey);
	expect_region(_metadata, buf, len, off, wl, c->seed, 0, 0);
}

/*
 * ODP registration of a range with nothing mapped succeeds (unlike a
 * pinned MR), but an RDMA WRITE or READ there is refused and places
 * nothing. Once memory is mapped at that address, the same MR works.
 */
TEST_F_TIMEOUT(odp, unmapped_range, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, len = 64;
	struct ibv_mr *mr, *lmr;
	const char *why;
	uint8_t *u, *l;
	void *p;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE |
		       IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	u = slot_anon_far(_metadata, c, 0, 4 * P);
	ASSERT_EQ(0, munmap(u, 4 * P));
	c->map[0] = NULL;
	l = slot_anon(_metadata, c, 1, P, SENT_LOCAL);
	sodp_pattern_fill(l, len, c->seed, 0);
	mr = slot_reg(_metadata, c, 0, u, 4 * P, ODP_RW);
	lmr = slot_reg(_metadata, c, 1, l, P, IBV_ACCESS_LOCAL_WRITE);

	rdma_refused(_metadata, c, IBV_WR_RDMA_WRITE, l, len, lmr->lkey,
		     (uintptr_t)u + 100, mr->rkey);
	rdma_refused(_metadata, c, IBV_WR_RDMA_READ, l + P / 2, len,
		     lmr->lkey, (uintptr_t)u + 100, mr->rkey);
	ASSERT_BYTES(l + len, P - len, SENT_LOCAL);

	p = mmap(u, 4 * P, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_EQ((void *)u, p) TH_LOG("mmap: %s", strerror(errno));
	c->map[0] = p;
	c->map_len[0] = 4 * P;
	ctx_connect(_metadata, c);
	rdma_write(_metadata, c, l, len, lmr->lkey, (uintptr_t)u + 100,
		   mr->rkey);
	expect_region(_metadata, u, 4 * P, 100, len, c->seed, 0, 0);
}

/*
 * The requester's own SGE in an ODP MR over unmapped memory: a SEND from
 * it, an RDMA WRITE from it and an RDMA READ into it each complete with
 * IBV_WC_LOC_PROT_ERR (IBA: the work request that fails completes with
 * its error, later ones are flushed), on a fresh connection that the
 * error moves to the error state (a RECV posted before is flushed); the
 * responder's buffers are untouched and nothing hangs or splats. All
 * three are run and checked, whichever fails.
 */
TEST_F_TIMEOUT(odp, local_unmapped, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, len = 3 * P;
	static const char * const names[] = { "SEND", "WRITE", "READ" };
	uint8_t *rbuf = NULL, *u, *r;
	struct ibv_mr *umr, *rmr;
	enum ibv_wr_opcode op;
	struct ibv_wc wc;
	int tmo = c->dev.timeout_ms;
	const char *why;
	int k;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_SEND |
		       IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	u = slot_anon_far(_metadata, c, 0, len);
	ASSERT_EQ(0, munmap(u, len));
	c->map[0] = NULL;
	r = slot_anon(_metadata, c, 1, 2 * len, SENT_DST);
	umr = slot_reg(_metadata, c, 0, u, len, ODP_RW);
	rmr = slot_reg(_metadata, c, 1, r, 2 * len, SODP_ACCESS_RW);

	for (k = 0; k < 3; k++) {
		ctx_connect(_metadata, c);
		rbuf = (uint8_t *)c->pair.sync_buf + 1024;
		ASSERT_EQ(0, sodp_post_recv(&c->pair.cli, WRID_RECV, rbuf,
					    SLACK, c->pair.sync_mr->lkey));
		if (k == 0) {
			ASSERT_EQ(0, sodp_post_recv(&c->pair.srv, WRID_RECV,
						    r + len, len, rmr->lkey));
			ASSERT_EQ(0, sodp_post_send(&c->pair.cli, WRID_RDMA,
						    u + 5, len - 10,
						    umr->lkey));
		} else {
			op = k == 1 ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ;
			ASSERT_EQ(0, sodp_post_rdma(&c->pair.cli, op,
						    WRID_RDMA, u + 5, len - 10,
						    umr->lkey, (uintptr_t)r,
						    rmr->rkey, 0));
		}
		ASSERT_EQ(0, sodp_poll_one(c->pair.cli.scq, &wc, tmo));
		ASSERT_EQ(WRID_RDMA, wc.wr_id);
		if (wc.status != IBV_WC_LOC_PROT_ERR)
			TH_LOG("%s from/into unmapped ODP memory: %s (%d), expected %s",
			       names[k], ibv_wc_status_str(wc.status),
			       wc.status,
			       ibv_wc_status_str(IBV_WC_LOC_PROT_ERR));
		EXPECT_EQ(IBV_WC_LOC_PROT_ERR, (int)wc.status);
		/*
		 * siw (upstream too) does not flush the receive queue after
		 * a local transmit error until the connection is torn down.
		 */
		if (!c->dev.iwarp)
			expect_wc(_metadata, c->pair.cli.rcq, tmo, WRID_RECV,
				  IBV_WC_WR_FLUSH_ERR, -1, -1);
		ASSERT_BYTES(r, 2 * len, SENT_DST);
	}
}

/*
 * The responder's RECV buffer in an ODP MR over unmapped memory, for an RC
 * SEND into a posted RECV, into an SRQ RECV and (RoCE) a UD datagram: the
 * RECV completes with an error status, an RC SEND is not reported
 * successful, nothing is placed anywhere, nothing hangs or splats; and a
 * new connection with a mapped RECV buffer works again. The statuses are
 * logged (rxe: the receiver gets IBV_WC_LOC_QP_OP_ERR, the RC sender
 * IBV_WC_REM_OP_ERR).
 */
TEST_F_TIMEOUT(odp, recv_unmapped, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, len = 2 * P;
	struct ibv_srq_init_attr sattr = {
		.attr = { .max_wr = 16, .max_sge = 1 },
	};
	struct ibv_mr *umr, *smr;
	int tmo = c->dev.timeout_ms;
	struct ibv_wc wc;
	const char *why;
	uint8_t *u, *s;
	int k;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_RECV |
		       IBV_ODP_SUPPORT_SRQ_RECV, false);
	if (why)
		SKIP(return, "%s", why);
	u = slot_anon_far(_metadata, c, 0, len);
	ASSERT_EQ(0, munmap(u, len));
	c->map[0] = NULL;
	s = slot_anon(_metadata, c, 1, 2 * len, 0);
	sodp_pattern_fill(s, len, c->seed, 0);
	umr = slot_reg(_metadata, c, 0, u, len, ODP_RW);
	smr = slot_reg(_metadata, c, 1, s, 2 * len, IBV_ACCESS_LOCAL_WRITE);

	for (k = 0; k < 2; k++) {
		if (k == 1) {
			c->srq = ibv_create_srq(c->dev.pd, &sattr);
			ASSERT_NE(NULL, c->srq);
		}
		ctx_connect(_metadata, c);
		if (k == 1) {
			ASSERT_EQ(0, sodp_post_srq_recv(c->srq, WRID_RECV,
							u + 5, 1000,
							umr->lkey));
		} else {
			ASSERT_EQ(0, sodp_post_recv(&c->pair.srv, WRID_RECV,
						    u + 5, 1000, umr->lkey));
		}
		ASSERT_EQ(0, sodp_post_send(&c->pair.cli, WRID_SEND, s, 1000,
					    smr->lkey));
		ASSERT_EQ(0, sodp_poll_one(c->pair.srv.rcq, &wc, tmo));
		TH_LOG("%s RECV into unmapped ODP memory: %s",
		       k ? "SRQ" : "RC", ibv_wc_status_str(wc.status));
		ASSERT_EQ(WRID_RECV, wc.wr_id);
		ASSERT_NE(IBV_WC_SUCCESS, (int)wc.status);
		ASSERT_EQ(0, sodp_poll_one(c->pair.cli.scq, &wc, tmo));
		TH_LOG("%s SEND to it: %s", k ? "SRQ" : "RC",
		       ibv_wc_status_str(wc.status));
		ASSERT_EQ(WRID_SEND, wc.wr_id);
		/*
		 * On iWARP a SEND completes once TCP took it; the receiver
		 * then terminates the connection instead of a NAK.
		 */
		if (!c->dev.iwarp)
			ASSERT_NE(IBV_WC_SUCCESS, (int)wc.status);
	}
	sodp_pair_destroy(&c->pair);
	ibv_destroy_srq(c->srq);
	c->srq = NULL;

	if (!c->dev.iwarp && !odp_skip(c, IBV_QPT_UD, IBV_ODP_SUPPORT_RECV,
				       false)) {
		ASSERT_EQ(0, sodp_ud_create(&c->dev, &c->ud));
		ASSERT_EQ(0, sodp_post_recv(&c->ud.rcv, WRID_RECV, u + 5,
					    SODP_GRH_LEN + 1000, umr->lkey));
		ASSERT_EQ(0, sodp_ud_post_send(&c->ud, WRID_SEND, s, 1000,
					       smr->lkey));
		expect_wc(_metadata, c->ud.snd.scq, tmo, WRID_SEND,
			  IBV_WC_SUCCESS, IBV_WC_SEND, 1000);
		ASSERT_EQ(0, sodp_poll_one(c->ud.rcv.rcq, &wc, tmo));
		TH_LOG("UD RECV into unmapped ODP memory: %s",
		       ibv_wc_status_str(wc.status));
		ASSERT_EQ(WRID_RECV, wc.wr_id);
		ASSERT_NE(IBV_WC_SUCCESS, (int)wc.status);
	}

	/* A mapped RECV buffer on a new connection works. */
	ctx_connect(_metadata, c);
	ASSERT_EQ(0, sodp_post_recv(&c->pair.srv, WRID_RECV, s + len, len,
				    smr->lkey));
	ASSERT_EQ(0, sodp_post_send(&c->pair.cli, WRID_SEND, s, 1000,
				    smr->lkey));
	expect_wc(_metadata, c->pair.cli.scq, tmo, WRID_SEND, IBV_WC_SUCCESS,
		  IBV_WC_SEND, 1000);
	expect_wc(_metadata, c->pair.srv.rcq, tmo, WRID_RECV, IBV_WC_SUCCESS,
		  IBV_WC_RECV, 1000);
	ASSERT_PATTERN(s + len, 1000, c->seed, 0);
}

#define IR_ROUNDS	16

/*
 * Implicit ODP over memory that comes and goes: IR_ROUNDS times, map a
 * 2 MiB-aligned 2 MiB buffer at the same address, READ it through the
 * implicit MR (must be zeros: never the previous round's pages, however
 * far the reclaim of the unmapped implicit child got), WRITE a new
 * pattern into it, check it with the CPU and by READ, and unmap it;
 * every other round without giving the child reclaim work time to run.
 */
TEST_F_TIMEOUT(odp, implicit_remap, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t len = HPAGE_SZ, wl = 300 * 1024;
	uint8_t *base, *a, *l;
	struct ibv_mr *imr;
	const char *why;
	uint64_t seed;
	ssize_t off;
	int i;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_SEND |
		       IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ, true);
	if (why)
		SKIP(return, "%s", why);
	imr = slot_reg(_metadata, c, 0, NULL, SIZE_MAX, ODP_RW);
	l = slot_anon(_metadata, c, 1, 2 * wl, 0);
	base = slot_anon_far(_metadata, c, 2, 2 * len);
	a = (uint8_t *)round_up((uintptr_t)base, HPAGE_SZ);
	ctx_connect(_metadata, c);

	for (i = 0; i < IR_ROUNDS; i++) {
		seed = c->seed + i;
		if (i) {
			void *p = mmap(a, len, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS |
				       MAP_FIXED, -1, 0);

			ASSERT_EQ((void *)a, p);
		}
		ASSERT_EQ(0, madvise(a, len, MADV_NOHUGEPAGE));
		memset(l + wl, SENT_LOCAL, wl);
		rdma_read(_metadata, c, l + wl, wl, imr->lkey,
			  (uintptr_t)a + len - wl - 3, imr->rkey);
		off = sodp_byte_check(l + wl, wl, 0);
		ASSERT_EQ(-1, off) TH_LOG("round %d: byte %zd is %#x", i, off,
					  l[wl + off]);
		sodp_pattern_fill(l, wl, seed, 0);
		rdma_write(_metadata, c, l, wl, imr->lkey,
			   (uintptr_t)a + len - wl - 3, imr->rkey);
		ASSERT_PATTERN(a + len - wl - 3, wl, seed, 0);
		rdma_read(_metadata, c, l + wl, wl, imr->lkey,
			  (uintptr_t)a + len - wl - 3, imr->rkey);
		ASSERT_PATTERN(l + wl, wl, seed, 0);
		ASSERT_EQ(0, munmap(a, len));
		if (i & 1)
			sleep_ms(20);
	}
	/* The last round's pages are gone: a READ there is refused. */
	rdma_refused(_metadata, c, IBV_WR_RDMA_READ, l + wl, 64, imr->lkey,
		     (uintptr_t)a + len - wl - 3, imr->rkey);
}

/*
 * A retransmitted RDMA READ request that reaches the responder after the
 * requester has completed the READ: the retry crossed the responses, as
 * when the responder stalls for longer than the ACK timeout (a fault, a
 * loaded TCG host). The responder serves the duplicate again, from memory
 * the application may have unmapped or deregistered since. That may fail
 * the duplicate but never the QP: the requester ignores a NAK for a PSN it
 * has completed, so a server QP in the error state would drop every later
 * request unnoticed and the next work request would never complete (how
 * odp.implicit_remap timed out). The retransmission is injected from the
 * veth peer of the device's netdev (RoCE only), twice: into an ODP MR whose
 * memory was unmapped, and into a plain MR that was deregistered. Each time
 * the connection must still carry a SEND and the server QP stay in RTS.
 */
TEST_F_TIMEOUT(odp, read_retry_after_unmap, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, len = 64;
	static const char * const gone[] = { "unmapped", "deregistered" };
	struct ibv_qp_init_attr init;
	struct ibv_qp_attr attr;
	struct ibv_mr *lmr, *xmr;
	uint32_t psn, rkey;
	const char *why;
	uint8_t *l, *x;
	int k, ret;

	if (c->dev.iwarp)
		SKIP(return, "%s: iWARP, the case injects a RoCE retransmission",
		     c->dev.name);
	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_READ, false);
	if (why)
		SKIP(return, "%s", why);
	l = slot_anon(_metadata, c, 0, P, SENT_LOCAL);
	lmr = slot_reg(_metadata, c, 0, l, P, IBV_ACCESS_LOCAL_WRITE);

	for (k = 0; k < 2; k++) {
		x = slot_anon(_metadata, c, 1, P, 0);
		sodp_pattern_fill(x, P, c->seed + k, 0);
		xmr = slot_reg(_metadata, c, 1, x, P,
			       k ? SODP_ACCESS_RW : ODP_RW);
		rkey = xmr->rkey;
		ctx_connect(_metadata, c);

		/* The PSN of the client's next request: the READ's. */
		ASSERT_EQ(0, ibv_query_qp(c->pair.cli.qp, &attr,
					  IBV_QP_SQ_PSN, &init));
		psn = attr.sq_psn;
		rdma_read(_metadata, c, l, len, lmr->lkey, (uintptr_t)x, rkey);
		ASSERT_PATTERN(l, len, c->seed + k, 0);

		if (k == 0) {
			ASSERT_EQ(0, munmap(x, P));
			c->map[1] = NULL;
		} else {
			ASSERT_EQ(0, sodp_mr_dereg(&c->mr[1]));
		}
		ret = sodp_inject_read_request(&c->pair, psn, (uintptr_t)x,
					       rkey, len);
		if (ret == -ENODEV)
			SKIP(return, "%s: no veth peer to retransmit from",
			     c->dev.ifname);
		ASSERT_EQ(0, ret);

		/* Queued behind the duplicate at the server. */
		ret = sodp_pair_sync(&c->pair);
		ASSERT_EQ(0, ibv_query_qp(c->pair.srv.qp, &attr,
					  IBV_QP_STATE, &init));
		if (ret || attr.qp_state != IBV_QPS_RTS)
			TH_LOG("after a READ retry into %s memory: SEND %s, server QP state %d",
			       gone[k], ret ? strerror(-ret) : "ok",
			       attr.qp_state);
		ASSERT_EQ(0, ret);
		ASSERT_EQ(IBV_QPS_RTS, (int)attr.qp_state);
		ctx_slot_release(c, 1);
	}
}

/*
 * ibv_advise_mr() with FLUSH on the implicit MR for a range outside the
 * user address space (but inside the MR's [0, UINT64_MAX) iova range)
 * fails with EINVAL, like any range outside an MR (rxe_sodp_advise_mr()'s
 * contract); one that wraps around fails with EINVAL too.
 */
TEST_F(odp, advise_implicit_out_of_range)
{
	struct odp_ctx *c = &self->c;
	struct ibv_mr *imr;
	const char *why;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE, true);
	if (why)
		SKIP(return, "%s", why);
	imr = slot_reg(_metadata, c, 0, NULL, SIZE_MAX, ODP_RW);
	ASSERT_EQ(EINVAL, advise(imr, IBV_ADVISE_MR_ADVICE_PREFETCH,
				 IBV_ADVISE_MR_FLAG_FLUSH,
				 (void *)(uintptr_t)(UINT64_MAX - 100), 4096));
	ASSERT_EQ(EINVAL, advise(imr, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
				 IBV_ADVISE_MR_FLAG_FLUSH,
				 (void *)0xffff888000000000ull, PAGE_SZ));
	ASSERT_EQ(EINVAL, advise(imr, IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT,
				 IBV_ADVISE_MR_FLAG_FLUSH,
				 (void *)0xffffffff81000000ull, PAGE_SZ));
}

/* ---- Counters -------------------------------------------------------- */

/*
 * The per-MR counters follow what happens: a fresh ODP MR shows nothing;
 * after an RDMA WRITE into 21 cold pages page_faults > 0, pages_faulted,
 * pages_mirrored and cache_misses >= 21 (and the debugfs totals grew at
 * least as much); after munmap() of 4 of those pages page_invalidations
 * grew, pages_invalidated by at least 4, pages_mirrored dropped by at
 * least 4.
 */
TEST_F_TIMEOUT(odp, counters, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, len = 64 * P, woff = P + 100;
	const size_t wlen = 20 * P, touched = 21;
	struct sodp_mr_stats st0, st1, st2;
	int64_t faults0, inval0;
	struct ibv_mr *mr, *smr;
	uint8_t *t, *src;
	const char *why;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE, false);
	if (why)
		SKIP(return, "%s", why);
	t = slot_anon(_metadata, c, 0, len, -1);
	ASSERT_EQ(0, madvise(t, len, MADV_NOHUGEPAGE));
	src = slot_anon(_metadata, c, 1, wlen, 0);
	sodp_pattern_fill(src, wlen, c->seed, 0);
	mr = slot_reg(_metadata, c, 0, t, len, ODP_RW);
	smr = slot_reg(_metadata, c, 1, src, wlen, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);

	mr_stats(_metadata, c, mr, &st0);
	ASSERT_EQ(0ull, st0.page_faults);
	ASSERT_EQ(0ull, st0.pages_faulted);
	ASSERT_EQ(0ull, st0.pages_mirrored);
	ASSERT_EQ(0ull, st0.page_invalidations);
	faults0 = dbg_get(_metadata, "faults");
	inval0 = dbg_get(_metadata, "invalidations");

	rdma_write(_metadata, c, src, wlen, smr->lkey, (uintptr_t)t + woff,
		   mr->rkey);
	mr_stats(_metadata, c, mr, &st1);
	TH_LOG("write: %llu faults, %llu pages faulted, %llu misses, %llu hits",
	       (unsigned long long)st1.page_faults,
	       (unsigned long long)st1.pages_faulted,
	       (unsigned long long)st1.cache_misses,
	       (unsigned long long)st1.cache_hits);
	ASSERT_LT(0ull, st1.page_faults);
	ASSERT_LE(touched, st1.pages_faulted);
	ASSERT_LE(touched, st1.pages_mirrored);
	ASSERT_LE(touched, st1.cache_misses);
	ASSERT_LE(faults0 + (int64_t)st1.page_faults,
		  dbg_get(_metadata, "faults"));
	ASSERT_PATTERN(t + woff, wlen, c->seed, 0);

	ASSERT_EQ(0, munmap(t + 4 * P, 4 * P));
	mr_stats(_metadata, c, mr, &st2);
	TH_LOG("munmap: %llu invalidations, %llu pages invalidated",
	       (unsigned long long)(st2.page_invalidations -
				    st1.page_invalidations),
	       (unsigned long long)(st2.pages_invalidated -
				    st1.pages_invalidated));
	ASSERT_LT(st1.page_invalidations, st2.page_invalidations);
	ASSERT_LE(st1.pages_invalidated + 4, st2.pages_invalidated);
	ASSERT_GE(st1.pages_mirrored - 4, st2.pages_mirrored);
	ASSERT_LT(inval0, dbg_get(_metadata, "invalidations"));
}

/*
 * A device's sodp hw counter, the per-MR counter ("rdma statistic mr")
 * that it sums over the device's MRs and the debugfs total that sums it
 * over every device. rxe never defers, so only siw has sodp_deferrals.
 */
static const struct {
	const char *hw;
	size_t mr;
	const char *dbg;
	bool iwarp_only;
} hw_cnt[] = {
#define HW_CNT(hw, mr, dbg, iw) \
	{ hw, offsetof(struct sodp_mr_stats, mr), dbg, iw }
	HW_CNT("sodp_page_faults", page_faults, "faults", false),
	HW_CNT("sodp_pages_faulted", pages_faulted, "pages_faulted", false),
	HW_CNT("sodp_page_invalidations", page_invalidations,
	       "invalidations", false),
	HW_CNT("sodp_pages_invalidated", pages_invalidated,
	       "pages_invalidated", false),
	HW_CNT("sodp_page_prefetch", page_prefetch, "prefetches", false),
	HW_CNT("sodp_cache_hits", cache_hits, "cache_hits", false),
	HW_CNT("sodp_cache_misses", cache_misses, "cache_misses", false),
	HW_CNT("sodp_cache_recalls", cache_recalls, "recalls", false),
	HW_CNT("sodp_deferrals", deferrals, "deferrals", true),
	/* References held now vs. the entries the MRs' caches hold */
	HW_CNT("sodp_pages_held", pages_cached, "pages_held", false),
#undef HW_CNT
};

enum {
	HW_FAULTS, HW_PAGES_FAULTED, HW_INVALIDATIONS, HW_PAGES_INVALIDATED,
	HW_PREFETCH, HW_HITS, HW_MISSES, HW_RECALLS, HW_DEFERRALS, HW_HELD,
	HW_N
};

/* The three views of the counters at one moment. */
struct hw_snap {
	int64_t hw[HW_N];
	int64_t mr[HW_N];
	int64_t dbg[HW_N];
	unsigned int nmr;
};

static bool hw_has(const struct odp_ctx *c, int i)
{
	return !hw_cnt[i].iwarp_only || c->dev.iwarp;
}

/*
 * Read the hw counters between two identical readings of the MRs' sums,
 * so that no event falls between the views. The sleep first lets the
 * kernel's 10 ms cache of the sysfs values expire.
 */
static void hw_snap(struct __test_metadata *_metadata, struct odp_ctx *c,
		    struct hw_snap *s)
{
	struct sodp_mr_stats a, b;
	unsigned int n2, try;
	uint64_t v;
	int i;

	for (try = 0; try < 5; try++) {
		ASSERT_EQ(0, sodp_dev_mr_stats_sum(c->dev.name, &a, &s->nmr));
		usleep(30 * 1000);
		for (i = 0; i < HW_N; i++) {
			s->hw[i] = 0;
			if (!hw_has(c, i))
				continue;
			ASSERT_EQ(0, sodp_hw_counter_get(c->dev.name,
							 hw_cnt[i].hw, &v));
			s->hw[i] = v;
		}
		for (i = 0; i < HW_N; i++)
			s->dbg[i] = dbg_get(_metadata, hw_cnt[i].dbg);
		ASSERT_EQ(0, sodp_dev_mr_stats_sum(c->dev.name, &b, &n2));
		if (n2 == s->nmr && !memcmp(&a, &b, sizeof(a)))
			break;
	}
	ASSERT_GT(5u, try) TH_LOG("the counters never stood still");
	for (i = 0; i < HW_N; i++)
		s->mr[i] = *(uint64_t *)((char *)&b + hw_cnt[i].mr);
}

/*
 * Every hw counter moved from @s0 to @s1 exactly as the debugfs total
 * and, unless an MR went away in between (@gone), as the MRs' sum; the
 * change of the hw counters in @d.
 */
static void hw_check(struct __test_metadata *_metadata, struct odp_ctx *c,
		     const char *what, const struct hw_snap *s0,
		     const struct hw_snap *s1, bool gone, int64_t *d)
{
	char line[512];
	size_t n = 0;
	int i;

	for (i = 0; i < HW_N; i++) {
		d[i] = s1->hw[i] - s0->hw[i];
		if (d[i] && n < sizeof(line))
			n += snprintf(line + n, sizeof(line) - n, " %s %+lld",
				      hw_cnt[i].hw + 5, (long long)d[i]);
	}
	TH_LOG("%s:%s", what, n ? line : " nothing");
	for (i = 0; i < HW_N; i++) {
		int64_t dmr = s1->mr[i] - s0->mr[i];

		if (!hw_has(c, i))
			continue;
		ASSERT_EQ(s1->dbg[i] - s0->dbg[i], d[i])
			TH_LOG("%s: %s vs. debugfs", what, hw_cnt[i].hw);
		if (gone && i != HW_HELD) {
			ASSERT_EQ(0, d[i]) TH_LOG("%s: %s", what, hw_cnt[i].hw);
		} else {
			ASSERT_EQ(dmr, d[i])
				TH_LOG("%s: %s vs. the MRs", what,
				       hw_cnt[i].hw);
		}
	}
}

/*
 * The device's sodp counters, in /sys/class/infiniband/DEV/ports/1/
 * hw_counters/sodp_* and "rdma statistic show link DEV/1", move exactly
 * as the per-MR counters of the device's MRs summed and as the debugfs
 * totals (cache_idle_ms 60 s, so no cached page ages out meanwhile):
 * - an RDMA WRITE of 20 pages into 21 cold pages: page_faults >= 1,
 *   pages_faulted, cache_misses and pages_held >= 21 (siw: deferrals
 *   >= 1);
 * - MADV_DONTNEED of 4 of them: page_invalidations >= 1,
 *   pages_invalidated and cache_recalls >= 4, pages_held down by >= 4;
 * - the same WRITE again: cache_hits >= 16, the 4 pages faulted again;
 * - deregistering the MR: every counter but pages_held stays, pages_held
 *   drops by what the MR's cache held.
 * rxe lists no sodp_deferrals.
 */
TEST_F_TIMEOUT(odp, device_counters, CASE_TIMEOUT)
{
	struct odp_ctx *c = &self->c;
	const size_t P = PAGE_SZ, len = 64 * P, woff = P + 100;
	const size_t wlen = 20 * P;
	const int64_t touched = 21;
	struct hw_snap s0, s1, s2, s3, s4;
	int64_t d[HW_N], cached;
	struct sodp_mr_stats st;
	struct ibv_mr *mr, *smr;
	uint64_t deadline, v;
	uint8_t *t, *src;
	char path[256];
	const char *why;
	int i;

	why = odp_skip(c, IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE, false);
	if (why)
		SKIP(return, "%s", why);
	snprintf(path, sizeof(path),
		 "/sys/class/infiniband/%s/ports/1/hw_counters/sodp_deferrals",
		 c->dev.name);
	ASSERT_EQ(c->dev.iwarp, access(path, F_OK) == 0);
	ctx_param(_metadata, c, CACHE_IDLE_PATH, 60000);

	t = slot_anon(_metadata, c, 0, len, -1);
	ASSERT_EQ(0, madvise(t, len, MADV_NOHUGEPAGE));
	src = slot_anon(_metadata, c, 1, wlen, 0);
	sodp_pattern_fill(src, wlen, c->seed, 0);
	mr = slot_reg(_metadata, c, 0, t, len, ODP_RW);
	smr = slot_reg(_metadata, c, 1, src, wlen, IBV_ACCESS_LOCAL_WRITE);
	ctx_connect(_metadata, c);
	hw_snap(_metadata, c, &s0);

	rdma_write(_metadata, c, src, wlen, smr->lkey, (uintptr_t)t + woff,
		   mr->rkey);
	ASSERT_PATTERN(t + woff, wlen, c->seed, 0);
	hw_snap(_metadata, c, &s1);
	hw_check(_metadata, c, "cold write", &s0, &s1, false, d);
	ASSERT_LE(1, d[HW_FAULTS]);
	ASSERT_LE(touched, d[HW_PAGES_FAULTED]);
	ASSERT_LE(touched, d[HW_MISSES]);
	ASSERT_LE(touched, d[HW_HELD]);
	if (c->dev.iwarp)
		ASSERT_LE(1, d[HW_DEFERRALS]);

	ASSERT_EQ(0, madvise(t + 4 * P, 4 * P, MADV_DONTNEED));
	hw_snap(_metadata, c, &s2);
	hw_check(_metadata, c, "madv_dontneed", &s1, &s2, false, d);
	ASSERT_LE(1, d[HW_INVALIDATIONS]);
	ASSERT_LE(4, d[HW_PAGES_INVALIDATED]);
	ASSERT_LE(4, d[HW_RECALLS]);
	ASSERT_GE(-4, d[HW_HELD]);

	rdma_write(_metadata, c, src, wlen, smr->lkey, (uintptr_t)t + woff,
		   mr->rkey);
	ASSERT_PATTERN(t + woff, wlen, c->seed, 0);
	hw_snap(_metadata, c, &s3);
	hw_check(_metadata, c, "warm write", &s2, &s3, false, d);
	ASSERT_LE(touched - 5, d[HW_HITS]);
	ASSERT_LE(4, d[HW_PAGES_FAULTED]);

	/* What the MR's cache holds goes with it (siw may free it late). */
	ASSERT_EQ(0, sodp_mr_stats_get(c->dev.name, mr->lkey, &st));
	cached = st.pages_cached;
	ASSERT_LE(touched, cached);
	ASSERT_EQ(0, sodp_mr_dereg(&c->mr[0]));
	deadline = now_ms() + 5000;
	do {
		hw_snap(_metadata, c, &s4);
	} while (s4.hw[HW_HELD] != s3.hw[HW_HELD] - cached &&
		 now_ms() < deadline);
	hw_check(_metadata, c, "dereg", &s3, &s4, true, d);
	ASSERT_EQ(-cached, d[HW_HELD]);

	/* Nothing moves now: rdma shows what sysfs shows. */
	for (i = 0; i < HW_N; i++) {
		if (!hw_has(c, i))
			continue;
		ASSERT_EQ(0, sodp_link_stat_get(c->dev.name, hw_cnt[i].hw,
						&v));
		ASSERT_EQ(s4.hw[i], (int64_t)v) TH_LOG("%s", hw_cnt[i].hw);
	}
}

/* ---- Whole processes ------------------------------------------------- */

/*
 * Cases whose verbs user is a forked child: the parent only looks at the
 * device through a short-lived plain verbs context, so the child sets up
 * librdmacm and its contexts from scratch and owns everything it creates.
 */
FIXTURE(odp_proc) {
	char name[IBV_SYSFS_NAME_MAX];
	struct ibv_device_attr_ex attr;
	bool iwarp;
};

FIXTURE_SETUP(odp_proc)
{
	const char *name = odp_device();

	if (!name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	snprintf(self->name, sizeof(self->name), "%s", name);
	ASSERT_EQ(0, sodp_dev_probe(name, &self->attr, &self->iwarp));
}

FIXTURE_TEARDOWN(odp_proc)
{
}

static void wait_child(struct __test_metadata *_metadata, pid_t pid)
{
	int status;

	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status)) TH_LOG("child status %#x", status);
	ASSERT_EQ(0, WEXITSTATUS(status));
}

#define MEMLOCK_HARD	(64 * 1024)	/* bytes */

/*
 * Drop CAP_IPC_LOCK (effective, permitted, inheritable); RLIMIT_MEMLOCK
 * soft limit 0, hard limit MEMLOCK_HARD (so it can be raised again).
 */
static int drop_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	const int i = CAP_TO_INDEX(CAP_IPC_LOCK);
	const uint32_t bit = CAP_TO_MASK(CAP_IPC_LOCK);
	struct rlimit rl = { 0, MEMLOCK_HARD };

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[i].effective &= ~bit;
	data[i].permitted &= ~bit;
	data[i].inheritable &= ~bit;
	if (syscall(SYS_capset, &hdr, data))
		return -errno;
	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	if (data[i].effective & bit)
		return -EPERM;
	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		return -errno;
	return 0;
}

#define BIG_LEN		(64 * GIB)
#define MEMLOCK_MAX_KB	(16 * 1024)

/*
 * A plain 1 MiB MR is refused with @want (ib_umem_get(): EPERM when the
 * memlock limit is 0, can_do_mlock(); ENOMEM when it is exceeded), or
 * registered without pinning under pin_mode=all. 0 or the child's exit
 * code.
 */
static int plain_mr_refused(struct sodp_dev *dev, void *plain, int want)
{
	struct ibv_mr *pmr = sodp_mr_reg(dev, plain, MIB, SODP_ACCESS_RW);
	int err = errno;

	if (sodp_pin_mode() == SODP_PIN_ALL) {
		if (!pmr)
			return child_fail("pin_mode=all, plain MR: %s",
					  strerror(err));
		sodp_mr_dereg(&pmr);
		return 0;
	}
	if (pmr || err != want) {
		sodp_mr_dereg(&pmr);
		return child_fail("plain 1 MiB MR: %s, expected %s",
				  pmr ? "registered" : strerror(err),
				  strerror(want));
	}
	return 0;
}

/* The child of memlock_free: see there. */
static int memlock_child(const char *name, uint64_t seed)
{
	static const struct {
		uint64_t off;
		uint32_t len;
	} far[] = {
		{ 0, 64 },
		{ GIB + 4093, 200 },
		{ 33 * GIB + 12345, 5000 },
		{ BIG_LEN - 64, 64 },
	};
	struct sodp_pair_opts opts = { .sync_access = IBV_ACCESS_ON_DEMAND };
	struct ibv_mr *mr, *smr;
	long mem0, mem1, mem2;
	struct sodp_pair pair;
	struct sodp_dev dev;
	uint8_t *big, *plain, *src;
	struct ibv_wc wc;
	unsigned int k;
	ssize_t off;
	int err;

	err = drop_ipc_lock();
	if (err)
		return child_fail("dropping CAP_IPC_LOCK: %s", strerror(-err));
	if (sodp_dev_open(&dev, name))
		return child_fail("cannot open %s", name);

	mem0 = kb_field("/proc/meminfo", "MemAvailable");
	big = mmap(NULL, BIG_LEN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (big == MAP_FAILED)
		return child_fail("mmap 64 GiB: %s", strerror(errno));
	madvise(big, BIG_LEN, MADV_NOHUGEPAGE);
	mr = sodp_mr_reg(&dev, big, BIG_LEN, ODP_RW);
	if (!mr)
		return child_fail("ODP registration of 64 GiB: %s",
				  strerror(errno));
	mem1 = kb_field("/proc/meminfo", "MemAvailable");
	if (mem0 - mem1 >= MEMLOCK_MAX_KB)
		return child_fail("the 64 GiB ODP MR cost %ld kB", mem0 - mem1);

	plain = mmap(NULL, MIB, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (plain == MAP_FAILED)
		return child_fail("mmap: %s", strerror(errno));
	memset(plain, 0, MIB);
	err = plain_mr_refused(&dev, plain, EPERM);
	if (!err) {
		struct rlimit rl = { MEMLOCK_HARD, MEMLOCK_HARD };

		if (setrlimit(RLIMIT_MEMLOCK, &rl))
			return child_fail("setrlimit: %s", strerror(errno));
		err = plain_mr_refused(&dev, plain, ENOMEM);
		rl.rlim_cur = 0;
		if (setrlimit(RLIMIT_MEMLOCK, &rl))
			return child_fail("setrlimit: %s", strerror(errno));
	}
	if (err)
		return err;

	if (sodp_pair_connect_opts(&dev, &pair, &opts))
		return child_fail("connect with nothing pinned");
	src = mmap(NULL, 2 * PAGE_SZ, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED)
		return child_fail("mmap: %s", strerror(errno));
	sodp_pattern_fill(src, 2 * PAGE_SZ, seed, 0);
	smr = sodp_mr_reg(&dev, src, 2 * PAGE_SZ,
			  IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_ON_DEMAND);
	if (!smr)
		return child_fail("ODP source MR: %s", strerror(errno));

	for (k = 0; k < ARRAY_SIZE(far); k++) {
		uint8_t *d = big + far[k].off;

		if (sodp_post_rdma(&pair.cli, IBV_WR_RDMA_WRITE, WRID_RDMA,
				   src, far[k].len, smr->lkey, (uintptr_t)d,
				   mr->rkey, 0) ||
		    sodp_poll_one(pair.cli.scq, &wc, dev.timeout_ms))
			return child_fail("WRITE at +%#llx",
					  (unsigned long long)far[k].off);
		if (wc.status != IBV_WC_SUCCESS || wc.wr_id != WRID_RDMA ||
		    wc.opcode != IBV_WC_RDMA_WRITE ||
		    wc.byte_len != far[k].len)
			return child_fail("WRITE at +%#llx: %s opcode %d len %u",
					  (unsigned long long)far[k].off,
					  ibv_wc_status_str(wc.status),
					  wc.opcode, wc.byte_len);
		if (sodp_pair_sync(&pair))
			return child_fail("sync");
		off = sodp_pattern_check(d, far[k].len, seed, 0);
		if (off >= 0)
			return child_fail("data at +%#llx differs at %zd",
					  (unsigned long long)far[k].off, off);
		if ((far[k].off && d[-1]) ||
		    (far[k].off + far[k].len < BIG_LEN && d[far[k].len]))
			return child_fail("write at +%#llx spilled over",
					  (unsigned long long)far[k].off);
	}
	mem2 = kb_field("/proc/meminfo", "MemAvailable");
	fprintf(stderr, "# memlock child: MemAvailable %ld -> %ld -> %ld kB\n",
		mem0, mem1, mem2);
	if (mem0 - mem2 >= MEMLOCK_MAX_KB)
		return child_fail("64 GiB ODP MR with 4 written ranges cost %ld kB",
				  mem0 - mem2);

	sodp_mr_dereg(&smr);
	sodp_mr_dereg(&mr);
	sodp_pair_destroy(&pair);
	sodp_dev_close(&dev);
	return 0;
}

/*
 * In a forked child without CAP_IPC_LOCK and with RLIMIT_MEMLOCK 0, with
 * its own device, PD and connection (its sync MR is ODP: nothing pinned):
 * ODP registration of a 64 GiB MAP_NORESERVE anonymous range succeeds and
 * costs less than 16 MiB of MemAvailable; a plain 1 MiB MR fails with
 * EPERM (ib_umem_get(): can_do_mlock() is false with a limit of 0), and
 * with ENOMEM under a 64 KiB limit (the pinned_vm check); under
 * pin_mode=all it is registered, not pinned. RDMA WRITEs from an ODP
 * source into four far-apart places of the 64 GiB MR (first and last
 * bytes included) land and are verified, and the whole still costs less
 * than 16 MiB.
 */
TEST_F_TIMEOUT(odp_proc, memlock_free, CASE_TIMEOUT)
{
	const char *why = odp_missing(self->name, &self->attr.odp_caps,
				      IBV_QPT_RC, IBV_ODP_SUPPORT_SEND |
				      IBV_ODP_SUPPORT_WRITE |
				      IBV_ODP_SUPPORT_RECV, false);
	pid_t pid;

	if (why)
		SKIP(return, "%s", why);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(memlock_child(self->name, sodp_seed(_metadata->name)));
	wait_child(_metadata, pid);
}

#define EXIT_BIG	(8 * MIB)

/* The child of exit_without_dereg: see there. Does not return. */
static void exit_child(const char *name, uint64_t seed)
{
	const size_t len = 16 * PAGE_SZ;
	struct ibv_mr *mr, *smr;
	struct sodp_pair pair;
	struct sodp_dev dev;
	uint8_t *t, *src;
	struct ibv_wc wc;
	int64_t umems = 0, held = 0;

	if (sodp_dev_open(&dev, name) || sodp_pair_connect(&dev, &pair))
		_exit(child_fail("cannot connect on %s", name));
	t = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	src = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED || src == MAP_FAILED)
		_exit(child_fail("mmap: %s", strerror(errno)));
	sodp_pattern_fill(src, len, seed, 0);
	mr = sodp_mr_reg(&dev, t, len, ODP_RW);
	smr = sodp_mr_reg(&dev, src, len, IBV_ACCESS_LOCAL_WRITE);
	if (!mr || !smr)
		_exit(child_fail("reg: %s", strerror(errno)));
	if (sodp_post_rdma(&pair.cli, IBV_WR_RDMA_WRITE, WRID_RDMA, src, len,
			   smr->lkey, (uintptr_t)t, mr->rkey, 0) ||
	    sodp_poll_one(pair.cli.scq, &wc, dev.timeout_ms) ||
	    wc.status != IBV_WC_SUCCESS || sodp_pair_sync(&pair))
		_exit(child_fail("WRITE failed"));
	if (sodp_pattern_check(t, len, seed, 0) >= 0)
		_exit(child_fail("WRITE data differs"));
	if (sodp_debugfs_get("umems", &umems) || umems < 1 ||
	    sodp_debugfs_get("pages_held", &held))
		_exit(child_fail("umems %lld", (long long)umems));
	fprintf(stderr, "# exit child: umems %lld pages_held %lld at exit\n",
		(long long)umems, (long long)held);

	/* An 8 MiB WRITE between cold ODP MRs, still running at exit. */
	t = mmap(NULL, EXIT_BIG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED)
		_exit(child_fail("mmap: %s", strerror(errno)));
	mr = sodp_mr_reg(&dev, t, EXIT_BIG, ODP_RW);
	if (!mr || sodp_post_rdma(&pair.cli, IBV_WR_RDMA_WRITE, WRID_RDMA,
				  t, EXIT_BIG / 2, mr->lkey,
				  (uintptr_t)t + EXIT_BIG / 2, mr->rkey, 0))
		_exit(child_fail("big WRITE: %s", strerror(errno)));
	/* No dereg, no destroy, no close: the kernel cleans up. */
	_exit(0);
}

/*
 * A forked child registers an ODP MR, writes it through RDMA (verified),
 * starts an 8 MiB RDMA WRITE between two cold halves of another ODP MR and
 * _exit()s without waiting for it and without any cleanup. Within 5 s the
 * parent sees debugfs umems == 0 and pages_held == 0: process exit leaves
 * no umem, notifier or page reference behind (and nothing splats).
 */
TEST_F_TIMEOUT(odp_proc, exit_without_dereg, CASE_TIMEOUT)
{
	const char *why = odp_missing(self->name, &self->attr.odp_caps,
				      IBV_QPT_RC, IBV_ODP_SUPPORT_WRITE, false);
	int64_t umems = -1, held = -1;
	uint64_t start;
	pid_t pid;

	if (why)
		SKIP(return, "%s", why);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		exit_child(self->name, sodp_seed(_metadata->name));
	wait_child(_metadata, pid);

	start = now_ms();
	do {
		umems = dbg_get(_metadata, "umems");
		held = dbg_get(_metadata, "pages_held");
		if (!umems && !held)
			break;
		sleep_ms(20);
	} while (now_ms() - start < 5000);
	TH_LOG("umems %lld pages_held %lld after %llu ms", (long long)umems,
	       (long long)held, (unsigned long long)(now_ms() - start));
	ASSERT_EQ(0, umems);
	ASSERT_EQ(0, held);
}

TEST_HARNESS_MAIN
