// SPDX-License-Identifier: GPL-2.0
/*
 * What a fault leaves behind.
 *
 * - Kernel memory: a fault that fails (a prefetch or a remote READ of a
 *   hole) must not leave mirror table chunks or implicit children behind,
 *   so the kernel memory sodp uses stays proportional to the pages it
 *   mirrors, whatever a peer probes. Checked with sodp's debugfs counters
 *   table_chunks and implicit_children (exact) and with SUnreclaim (not
 *   under KASAN, whose quarantine keeps freed objects there a while).
 * - Side effects: only the pages an access touches may be faulted with its
 *   permission. A write fault on a neighbour allocates blocks of a sparse
 *   file and COWs a private file page away from the file.
 *
 * Run with SODP_DEVICE=rxe0 or siw0 (test_sodp.sh does that), as root for
 * debugfs.
 */
#include "sodp_test.h"

#define PAGE_SZ		4096UL
#define CHUNK_SZ	(2UL << 20)	/* VA covered by one table chunk */
#define FILE_SZ		(256 * PAGE_SZ)	/* 1 MiB */

#define WRID_RDMA	0x52444d41ull
#define WRID_RECV	0x52454356ull

#define CASE_TIMEOUT	300		/* seconds, TCG guest */

/* Failing prefetches per MR, each into a 2 MiB range not probed before. */
#define PROBES_IMPLICIT	100000UL
#define PROBES_EXPLICIT	32768UL		/* a 64 GiB MR */
#define PROBE_BATCH	1024UL
/* Remote READs into holes; each one kills the QP, so reconnect. */
#define READ_PROBES	24

/* SUnreclaim may move this much for reasons of its own (slab caches). */
#define SUNRECLAIM_SLACK_KB	(8 * 1024)
/*
 * Under generic KASAN freed objects wait in its quarantine (up to 1/32 of
 * RAM), still counted in SUnreclaim: there only the exact counters (and
 * the debug tier's kmemleak scan) tell, and fewer probes show the same.
 */
#define KASAN_PROBE_DIV		16

#define SENT		0x5a

/* Is this a generic KASAN kernel (freed slab objects are quarantined)? */
static bool kasan_quarantine(void)
{
	static int known = -1;
	char line[256];
	FILE *f;

	if (known >= 0)
		return known;
	known = 0;
	f = fopen("/proc/kallsyms", "r");
	if (!f)
		return false;
	while (!known && fgets(line, sizeof(line), f))
		if (strstr(line, " kasan_quarantine_put"))
			known = 1;
	fclose(f);
	return known;
}

struct fm_ctx {
	struct sodp_dev dev;
	struct sodp_pair pair;
	struct ibv_mr *mr;
	struct ibv_mr *lmr;
	void *map;
	size_t map_len;
	void *local;
	int fd;
	char path[128];
};

/* Open the device, a local page and its MR; a reason to skip or NULL. */
static const char *ctx_open(struct fm_ctx *self)
{
	const char *name = getenv("SODP_DEVICE");
	static char why[128];

	self->fd = -1;
	if (!name || !*name)
		return "SODP_DEVICE is not set (run test_sodp.sh)";
	if (sodp_dev_open(&self->dev, name)) {
		snprintf(why, sizeof(why), "cannot open %s", name);
		return why;
	}
	if (!(self->dev.odp.general_caps & IBV_ODP_SUPPORT)) {
		snprintf(why, sizeof(why), "%s has no ODP", name);
		return why;
	}
	self->local = sodp_map_anon(PAGE_SZ);
	if (!self->local)
		return "no local page";
	self->lmr = sodp_mr_reg(&self->dev, self->local, PAGE_SZ,
				SODP_ACCESS_RW);
	if (!self->lmr)
		return "no local MR";
	return NULL;
}

static void ctx_close(struct fm_ctx *self)
{
	sodp_pair_destroy(&self->pair);
	sodp_mr_dereg(&self->mr);
	sodp_mr_dereg(&self->lmr);
	if (self->local)
		sodp_unmap(self->local, PAGE_SZ);
	if (self->map)
		munmap(self->map, self->map_len);
	if (self->fd >= 0)
		close(self->fd);
	if (self->path[0])
		unlink(self->path);
	sodp_dev_close(&self->dev);
}

FIXTURE(fm) {
	struct fm_ctx c;
};

FIXTURE_SETUP(fm)
{
	const char *why = ctx_open(&self->c);

	if (why)
		SKIP(return, "%s", why);
}

FIXTURE_TEARDOWN(fm)
{
	ctx_close(&self->c);
}

FIXTURE(ff) {
	struct fm_ctx c;
};

/* Files of the side-effect cases: where they live. */
FIXTURE_VARIANT(ff) {
	const char *dir;
};

FIXTURE_VARIANT_ADD(ff, tmpfs) {
	.dir = "/mnt/tmpfs",
};

FIXTURE_VARIANT_ADD(ff, ext4) {
	.dir = "/mnt/ext4",
};

FIXTURE_SETUP(ff)
{
	const char *why = ctx_open(&self->c);

	if (why)
		SKIP(return, "%s", why);
}

FIXTURE_TEARDOWN(ff)
{
	ctx_close(&self->c);
}

/* A "Key:   N kB" line of /proc/meminfo, in kB. */
static long meminfo_kb(const char *key)
{
	size_t klen = strlen(key);
	char line[256];
	long val = -1;
	FILE *f;

	f = fopen("/proc/meminfo", "r");
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

/* A sodp debugfs counter, -1 if this sodp has none of that name. */
static int64_t dbg(const char *name)
{
	char path[256];
	int64_t v;

	snprintf(path, sizeof(path), SODP_DEBUGFS "/%s", name);
	if (access(path, R_OK))
		return -1;
	if (sodp_debugfs_get(name, &v))
		return -1;
	return v;
}

struct mem_base {
	long sunreclaim;
	int64_t chunks;
	int64_t children;
};

static void mem_base_get(struct __test_metadata *_metadata,
			 struct mem_base *b)
{
	b->sunreclaim = meminfo_kb("SUnreclaim");
	ASSERT_LT(0, b->sunreclaim);
	b->chunks = dbg("table_chunks");
	b->children = dbg("implicit_children");
	if (b->chunks < 0 || b->children < 0)
		TH_LOG("no table_chunks/implicit_children in %s: SUnreclaim only",
		       SODP_DEBUGFS);
}

/*
 * Kernel memory is back where it was: the counters exactly (@extra chunks
 * allowed, for pages the caller mirrored on purpose), SUnreclaim within
 * SUNRECLAIM_SLACK_KB.
 */
static void mem_check(struct __test_metadata *_metadata,
		      const struct mem_base *b, unsigned long probes,
		      int64_t extra)
{
	long su = meminfo_kb("SUnreclaim");

	if (su - b->sunreclaim > SUNRECLAIM_SLACK_KB)
		TH_LOG("after %lu probes SUnreclaim grew by %ld kB%s",
		       probes, su - b->sunreclaim,
		       kasan_quarantine() ? " (KASAN quarantine: not checked)" :
		       "");
	if (!kasan_quarantine())
		ASSERT_GE(SUNRECLAIM_SLACK_KB, su - b->sunreclaim);
	if (b->chunks >= 0) {
		int64_t c = dbg("table_chunks");

		if (c != b->chunks + extra)
			TH_LOG("after %lu probes %lld table chunks, %lld before",
			       probes, (long long)c, (long long)b->chunks);
		ASSERT_EQ(b->chunks + extra, c);
	}
	if (b->children >= 0) {
		int64_t c = dbg("implicit_children");

		if (c != b->children)
			TH_LOG("after %lu probes %lld implicit children, %lld before",
			       probes, (long long)c, (long long)b->children);
		ASSERT_EQ(b->children, c);
	}
}

static int prefetch(struct ibv_mr *mr, uint64_t addr, uint32_t len)
{
	struct ibv_sge sge = { .addr = addr, .length = len, .lkey = mr->lkey };
	int ret = ibv_cmd_advise_mr(mr->pd, IBV_ADVISE_MR_ADVICE_PREFETCH,
				    IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1);

	return ret < 0 ? -ret : ret;
}

/* @n failing prefetches, one page into each 2 MiB of @hole. */
static void probe_holes(struct __test_metadata *_metadata,
			struct fm_ctx *self, uint8_t *hole,
			unsigned long n)
{
	struct mem_base b;
	unsigned long i;

	if (kasan_quarantine())
		n /= KASAN_PROBE_DIV;
	mem_base_get(_metadata, &b);
	for (i = 0; i < n; i++) {
		uint64_t va = (uintptr_t)hole + i * CHUNK_SZ + (i % 512) * PAGE_SZ;
		int ret = prefetch(self->mr, va, PAGE_SZ);

		if (ret != EFAULT)
			TH_LOG("prefetch %lu at %#llx: %d", i,
			       (unsigned long long)va, ret);
		ASSERT_EQ(EFAULT, ret);
		if ((i + 1) % PROBE_BATCH == 0)
			mem_check(_metadata, &b, i + 1, 0);
	}
	mem_check(_metadata, &b, n, 0);
}

static bool has_implicit(struct fm_ctx *self)
{
	return self->dev.odp.general_caps & IBV_ODP_SUPPORT_IMPLICIT;
}

/* A PROT_NONE reservation of @len bytes, nothing else will map there. */
static void *reserve(struct __test_metadata *_metadata,
		     struct fm_ctx *self, size_t len)
{
	void *p = mmap(NULL, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	ASSERT_NE(MAP_FAILED, p) TH_LOG("mmap(%zu): %s", len, strerror(errno));
	self->map = p;
	self->map_len = len;
	return p;
}

/*
 * PROBES_IMPLICIT synchronous prefetches (ibv_advise_mr PREFETCH + FLUSH)
 * through an implicit ODP MR, each into a different 2 MiB of a PROT_NONE
 * reservation: each fails with EFAULT, and afterwards no table chunk and
 * no implicit child is left (the counters are where they started) and
 * SUnreclaim has not grown (checked every PROBE_BATCH probes).
 */
TEST_F_TIMEOUT(fm, prefetch_holes_implicit, CASE_TIMEOUT)
{
	struct fm_ctx *c = &self->c;
	uint8_t *hole;

	if (!has_implicit(c))
		SKIP(return, "%s has no implicit ODP", c->dev.name);
	hole = reserve(_metadata, c, PROBES_IMPLICIT * CHUNK_SZ);
	c->mr = sodp_mr_reg(&c->dev, NULL, SIZE_MAX,
			    SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
	ASSERT_NE(NULL, c->mr) TH_LOG("implicit MR: %s", strerror(errno));
	probe_holes(_metadata, c, hole, PROBES_IMPLICIT);
}

/*
 * The same through an explicit 64 GiB ODP MR registered over read-write
 * memory that is then replaced by a PROT_NONE mapping: PROBES_EXPLICIT
 * failing prefetches into distinct 2 MiB leave no table chunk behind.
 */
TEST_F_TIMEOUT(fm, prefetch_holes_explicit, CASE_TIMEOUT)
{
	struct fm_ctx *c = &self->c;
	size_t len = PROBES_EXPLICIT * CHUNK_SZ;
	uint8_t *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	c->map = p;
	c->map_len = len;
	c->mr = sodp_mr_reg(&c->dev, p, len,
			    SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
	ASSERT_NE(NULL, c->mr) TH_LOG("64 GiB ODP MR: %s", strerror(errno));
	ASSERT_EQ(p, mmap(p, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
			  MAP_NORESERVE | MAP_FIXED, -1, 0));
	probe_holes(_metadata, c, p, PROBES_EXPLICIT);
}

/*
 * A remote READ that the responder must refuse, on a fresh connection (the
 * QP goes to error): rxe NAKs it (IBV_WC_REM_ACCESS_ERR), siw terminates
 * the connection and the READ completes with an error status.
 */
static void read_refused(struct __test_metadata *_metadata,
			 struct fm_ctx *self, uint64_t raddr)
{
	int tmo = self->dev.timeout_ms;
	struct ibv_wc wc;

	sodp_pair_destroy(&self->pair);
	ASSERT_EQ(0, sodp_pair_connect(&self->dev, &self->pair));
	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_READ,
				    WRID_RDMA, self->local, 64,
				    self->lmr->lkey, raddr, self->mr->rkey, 0));
	ASSERT_EQ(0, sodp_poll_one(self->pair.cli.scq, &wc, tmo));
	ASSERT_EQ(WRID_RDMA, wc.wr_id);
	ASSERT_NE(IBV_WC_SUCCESS, (int)wc.status);
	if (!self->dev.iwarp)
		ASSERT_EQ(IBV_WC_REM_ACCESS_ERR, (int)wc.status);
}

/*
 * READ_PROBES remote READs, each into a different 2 MiB hole of an
 * implicit ODP MR (an explicit one where implicit ODP is missing), one
 * per connection since the refused READ kills the QP: the table chunks
 * and implicit children the responder's faults needed are all gone
 * afterwards. Then a READ of one mapped page in a fresh 2 MiB: exactly one
 * chunk stays while the page is mirrored, and none once it is unmapped.
 */
TEST_F_TIMEOUT(fm, read_holes, CASE_TIMEOUT)
{
	struct fm_ctx *c = &self->c;
	size_t len = (READ_PROBES + 1) * CHUNK_SZ;
	struct mem_base b;
	struct ibv_wc wc;
	uint8_t *hole;
	int i;

	if (!(c->dev.odp.per_transport_caps.rc_odp_caps &
	      IBV_ODP_SUPPORT_READ))
		SKIP(return, "%s has no ODP READ", c->dev.name);
	hole = reserve(_metadata, c, len);
	if (has_implicit(c))
		c->mr = sodp_mr_reg(&c->dev, NULL, SIZE_MAX,
				    SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
	else
		c->mr = sodp_mr_reg(&c->dev, hole, len,
				    SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
	ASSERT_NE(NULL, c->mr);
	mem_base_get(_metadata, &b);
	if (b.chunks < 0)
		SKIP(return, "sodp has no table_chunks counter");

	for (i = 0; i < READ_PROBES; i++)
		read_refused(_metadata, c, (uintptr_t)hole + i * CHUNK_SZ +
			     (i % 512) * PAGE_SZ);
	sodp_pair_destroy(&c->pair);
	mem_check(_metadata, &b, READ_PROBES, 0);

	/* A page that is there: read it, its chunk stays while it does. */
	hole += READ_PROBES * CHUNK_SZ;
	ASSERT_EQ(hole, mmap(hole, PAGE_SZ, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	memset(hole, SENT, PAGE_SZ);
	ASSERT_EQ(0, sodp_pair_connect(&c->dev, &c->pair));
	ASSERT_EQ(0, sodp_post_rdma(&c->pair.cli, IBV_WR_RDMA_READ,
				    WRID_RDMA, c->local, 64, c->lmr->lkey,
				    (uintptr_t)hole, c->mr->rkey, 0));
	ASSERT_EQ(0, sodp_poll_one(c->pair.cli.scq, &wc, c->dev.timeout_ms));
	ASSERT_EQ(IBV_WC_SUCCESS, (int)wc.status);
	ASSERT_EQ(-1, sodp_byte_check(c->local, 64, SENT));
	ASSERT_EQ(b.chunks + 1, dbg("table_chunks"));
	/* Its last page goes: the chunk (and child) follow, by a work item. */
	ASSERT_EQ(hole, mmap(hole, PAGE_SZ, PROT_NONE, MAP_PRIVATE |
			     MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0));
	for (i = 0; i < 100 && dbg("table_chunks") != b.chunks; i++)
		usleep(50 * 1000);
	mem_check(_metadata, &b, READ_PROBES + 1, 0);
}

/* Create the test file of @len bytes under the variant's directory. */
static int file_create(struct fm_ctx *self, const char *dir, size_t len)
{
	struct stat st;

	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		return -1;
	snprintf(self->path, sizeof(self->path), "%s/sodp_faultmem.%d", dir,
		 getpid());
	self->fd = open(self->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (self->fd < 0) {
		self->path[0] = '\0';
		return -1;
	}
	if (ftruncate(self->fd, len))
		return -1;
	return 0;
}

/* An RDMA WRITE of @len bytes of @src into the MR, placed for sure. */
static void rdma_write(struct __test_metadata *_metadata,
		       struct fm_ctx *self, const void *src, uint32_t len,
		       uint64_t raddr)
{
	struct ibv_wc wc;

	memcpy(self->local, src, len);
	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_RDMA, self->local, len,
				    self->lmr->lkey, raddr, self->mr->rkey,
				    0));
	ASSERT_EQ(0, sodp_poll_one(self->pair.cli.scq, &wc,
				   self->dev.timeout_ms * 3));
	ASSERT_EQ(IBV_WC_SUCCESS, (int)wc.status);
	/* siw acknowledges nothing: a round trip after it is placed. */
	ASSERT_EQ(0, sodp_pair_sync(&self->pair));
}

/*
 * An 8-byte remote WRITE into the middle of a sparse 1 MiB file (MAP_SHARED,
 * ODP MR over all of it, nothing touched before): after fsync() the file
 * has exactly one page of data (SEEK_DATA/SEEK_HOLE), allocated blocks of
 * one page (st_blocks), the 8 bytes in it and zeros elsewhere.
 */
TEST_F_TIMEOUT(ff, sparse_write, CASE_TIMEOUT)
{
	struct fm_ctx *c = &self->c;
	const off_t off = 37 * PAGE_SZ + 1000;
	const uint8_t data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t buf[PAGE_SZ];
	struct stat st;
	off_t d, h;

	if (!(c->dev.odp.per_transport_caps.rc_odp_caps &
	      IBV_ODP_SUPPORT_WRITE))
		SKIP(return, "%s has no ODP WRITE", c->dev.name);
	if (file_create(c, variant->dir, FILE_SZ))
		SKIP(return, "no file in %s: %s", variant->dir,
		     strerror(errno));
	c->map = mmap(NULL, FILE_SZ, PROT_READ | PROT_WRITE, MAP_SHARED,
		      c->fd, 0);
	ASSERT_NE(MAP_FAILED, c->map);
	c->map_len = FILE_SZ;
	c->mr = sodp_mr_reg(&c->dev, c->map, FILE_SZ,
			    SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
	ASSERT_NE(NULL, c->mr);
	ASSERT_EQ(0, sodp_pair_connect(&c->dev, &c->pair));

	rdma_write(_metadata, c, data, sizeof(data),
		   (uintptr_t)c->map + off);
	ASSERT_EQ(0, fsync(c->fd));

	ASSERT_EQ(0, fstat(c->fd, &st));
	d = lseek(c->fd, 0, SEEK_DATA);
	h = lseek(c->fd, d, SEEK_HOLE);
	TH_LOG("%s: st_blocks %lld, data [%lld, %lld)", variant->dir,
	       (long long)st.st_blocks, (long long)d, (long long)h);
	ASSERT_EQ((off_t)(off & ~(PAGE_SZ - 1)), d);
	ASSERT_EQ(d + (off_t)PAGE_SZ, h);
	ASSERT_EQ(-1, lseek(c->fd, h, SEEK_DATA));
	ASSERT_EQ(ENXIO, errno);
	ASSERT_EQ((blkcnt_t)(PAGE_SZ / 512), st.st_blocks);

	ASSERT_EQ((ssize_t)PAGE_SZ, pread(c->fd, buf, PAGE_SZ, d));
	ASSERT_EQ(0, memcmp(buf + (off - d), data, sizeof(data)));
	ASSERT_EQ(-1, sodp_byte_check(buf, off - d, 0));
	ASSERT_EQ(-1, sodp_byte_check(buf + (off - d) + sizeof(data),
				      PAGE_SZ - (off - d) - sizeof(data), 0));
}

/*
 * A MAP_PRIVATE mapping of a 64 KiB file of known content, registered as an
 * ODP MR: a remote WRITE into page 0 gives the process its private copy of
 * page 0 only. A pwrite() through the fd to page 1 afterwards is seen
 * through the mapping (the CPU and a remote READ of page 1 both return
 * the new file content), and the file itself does not have the WRITE.
 */
TEST_F_TIMEOUT(ff, private_file, CASE_TIMEOUT)
{
	struct fm_ctx *c = &self->c;
	const size_t len = 16 * PAGE_SZ;
	const uint8_t data[8] = { 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6,
				  0xd7 };
	uint8_t page[PAGE_SZ], *m;
	struct ibv_wc wc;
	size_t i;

	if (!(c->dev.odp.per_transport_caps.rc_odp_caps &
	      IBV_ODP_SUPPORT_WRITE) ||
	    !(c->dev.odp.per_transport_caps.rc_odp_caps &
	      IBV_ODP_SUPPORT_READ))
		SKIP(return, "%s has no ODP WRITE/READ", c->dev.name);
	if (file_create(c, variant->dir, 0))
		SKIP(return, "no file in %s: %s", variant->dir,
		     strerror(errno));
	for (i = 0; i < len / PAGE_SZ; i++) {
		memset(page, 0x10 + i, PAGE_SZ);
		ASSERT_EQ((ssize_t)PAGE_SZ,
			  pwrite(c->fd, page, PAGE_SZ, i * PAGE_SZ));
	}
	ASSERT_EQ(0, fsync(c->fd));
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, c->fd, 0);
	ASSERT_NE(MAP_FAILED, m);
	c->map = m;
	c->map_len = len;
	c->mr = sodp_mr_reg(&c->dev, m, len,
			    SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
	ASSERT_NE(NULL, c->mr);
	ASSERT_EQ(0, sodp_pair_connect(&c->dev, &c->pair));

	rdma_write(_metadata, c, data, sizeof(data), (uintptr_t)m + 100);
	ASSERT_EQ(0, memcmp(m + 100, data, sizeof(data)));

	/* The file changes under the neighbour page. */
	memset(page, 0xee, PAGE_SZ);
	ASSERT_EQ((ssize_t)PAGE_SZ, pwrite(c->fd, page, PAGE_SZ, PAGE_SZ));
	if (sodp_byte_check(m + PAGE_SZ, PAGE_SZ, 0xee) >= 0)
		TH_LOG("page 1 of the mapping is 0x%02x, the file 0xee",
		       m[PAGE_SZ]);
	ASSERT_EQ(-1, sodp_byte_check(m + PAGE_SZ, PAGE_SZ, 0xee));

	memset(c->local, 0, 64);
	ASSERT_EQ(0, sodp_post_rdma(&c->pair.cli, IBV_WR_RDMA_READ,
				    WRID_RDMA, c->local, 64,
				    c->lmr->lkey, (uintptr_t)m + PAGE_SZ,
				    c->mr->rkey, 0));
	ASSERT_EQ(0, sodp_poll_one(c->pair.cli.scq, &wc,
				   c->dev.timeout_ms));
	ASSERT_EQ(IBV_WC_SUCCESS, (int)wc.status);
	ASSERT_EQ(-1, sodp_byte_check(c->local, 64, 0xee));

	/* The rest of the mapping is the file's, the file has no WRITE. */
	for (i = 2; i < len / PAGE_SZ; i++)
		ASSERT_EQ(-1, sodp_byte_check(m + i * PAGE_SZ, PAGE_SZ,
					      0x10 + i));
	ASSERT_EQ((ssize_t)PAGE_SZ, pread(c->fd, page, PAGE_SZ, 0));
	ASSERT_EQ(-1, sodp_byte_check(page, PAGE_SZ, 0x10));
}

TEST_HARNESS_MAIN
