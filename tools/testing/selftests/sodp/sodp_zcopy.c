// SPDX-License-Identifier: GPL-2.0
/*
 * Pages of an ODP MR must not outlive the lease: nothing outside sodp may
 * keep a reference to them past the copy. siw's transmit path used to hand
 * them to TCP for zero copy (MSG_SPLICE_PAGES): TCP keeps such a page in
 * its retransmit queue until the peer acknowledges it, so a peer that
 * withholds ACKs pins the page for as long as it likes. On FS-DAX that
 * makes truncate and punch-hole wait for the page forever, and once the
 * file is gone its blocks go to another file while TCP still sends from
 * them.
 *
 * The cases put an ODP MR over a file on the FS-DAX mount
 * ($SODP_DAX_DIR, vm-run --pmem), READ 64 KiB of it through the QP pair
 * while tc drops TCP segments on lo (both ends of the pair have the same
 * address, so their traffic goes through lo), and punch the file. The
 * punch runs in a child with an alarm, so a punch that waits for TCP ends
 * in a reported failure, not a hung test. rxe has no TCP: the punch case
 * runs without tc there, the retransmit case is siw only.
 *
 * The last case is about siw's receive deferral remembering a failed fault
 * (see write_after_readonly()). It needs no DAX.
 *
 * Needs root (tc, fallocate on the pmem mount) and the tc tool.
 */
#include "sodp_test.h"
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <linux/fiemap.h>
#include <linux/fs.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX	0x00200000
#endif

#define WRID_READ	0x52454144ull
#define WRID_WRITE	0x57524954ull
#define WRID_RECV	0x52454356ull

#define ZC_TIMEOUT	300		/* seconds per case, TCG guest */
#define ZC_LEN		(64u << 10)	/* the READ */
#define PUNCH_SECS	20		/* bound on one punch-hole */
#define SENTINEL	0xa5
#define ACK_KINDS	4		/* TCP header sizes of a pure ACK */

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

FIXTURE(zcopy) {
	struct sodp_dev dev;
	struct sodp_pair pair;
	uint64_t seed;
	int tmo;
	bool tc_on;
	int fd;
	char path[4096];
	uint8_t *map;		/* the responder's file mapping, ZC_LEN */
	struct ibv_mr *fmr;	/* ODP MR over @map */
	uint8_t *lbuf;		/* the requester's READ sink, ZC_LEN */
	struct ibv_mr *lmr;
	int nreuse;		/* files made by reuse_blocks() */
	char rmem[128];		/* tcp_rmem to restore, "" if unchanged */
};

#define TCP_RMEM	"/proc/sys/net/ipv4/tcp_rmem"

/*
 * Give new TCP sockets a receive buffer whose initial window takes the
 * whole READ response: the requester's window updates are pure ACKs too.
 */
static int rmem_raise(FIXTURE_DATA(zcopy) *self)
{
	FILE *f = fopen(TCP_RMEM, "r");
	char *ok;

	if (!f)
		return -1;
	ok = fgets(self->rmem, sizeof(self->rmem), f);
	fclose(f);
	if (!ok)
		return -1;
	f = fopen(TCP_RMEM, "w");
	if (!f) {
		self->rmem[0] = 0;
		return -1;
	}
	fprintf(f, "4096 4194304 6291456\n");
	return fclose(f) ? -1 : 0;
}

static void rmem_restore(FIXTURE_DATA(zcopy) *self)
{
	FILE *f;

	if (!self->rmem[0])
		return;
	f = fopen(TCP_RMEM, "w");
	if (f) {
		fputs(self->rmem, f);
		fclose(f);
	}
	self->rmem[0] = 0;
}

/*
 * Drop the TCP segments on lo that match one of @match[0..@n) (u32
 * selectors): a prio qdisc whose third band is a netem with 100% loss,
 * everything else in the second band, and u32 filters sending the matches
 * to the third.
 */
static int tc_drop(struct __test_metadata *_metadata,
		   FIXTURE_DATA(zcopy) *self, char match[][128], int n)
{
	int i;

	sodp_run("tc qdisc del dev lo root 2>/dev/null");
	self->tc_on = true;
	if (sodp_run("tc qdisc add dev lo root handle 1: prio bands 3 priomap %s",
		     "1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1") ||
	    sodp_run("tc qdisc add dev lo parent 1:3 handle 30: netem loss 100%%")) {
		TH_LOG("tc qdisc setup on lo failed");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (sodp_run("tc filter add dev lo parent 1: protocol ip prio 1 %s %s %s",
			     "u32 match ip protocol 6 0xff", match[i],
			"flowid 1:3")) {
			TH_LOG("tc filter setup on lo failed (%s)", match[i]);
			return -1;
		}
	}
	return 0;
}

static void tc_undrop(FIXTURE_DATA(zcopy) *self)
{
	if (!self->tc_on)
		return;
	sodp_run("tc qdisc del dev lo root");
	self->tc_on = false;
}

/* Host-order TCP port the pair's responder (the listener) uses. */
static unsigned int srv_port(FIXTURE_DATA(zcopy) *self)
{
	return ntohs(rdma_get_src_port(self->pair.listen_id));
}

/*
 * Bytes that the TCP socket with local port @port and state ESTABLISHED
 * has sent or queued and not seen acknowledged (/proc/net/tcp tx_queue),
 * or -1 if there is no such socket.
 */
static long tcp_unacked(unsigned int port)
{
	FILE *f = fopen("/proc/net/tcp", "r");
	char line[512];
	long ret = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned int lport, st;
		unsigned long txq;

		if (sscanf(line, " %*u: %*x:%x %*x:%*x %x %lx", &lport, &st,
			   &txq) != 3)
			continue;
		if (lport == port && st == 1) {
			ret = txq;
			break;
		}
	}
	fclose(f);
	return ret;
}

/*
 * Punch [@off, @off + @len) out of @fd in a child that an alarm kills
 * after PUNCH_SECS: ext4_break_layouts() waits interruptibly for busy DAX
 * pages, so a punch that waits for a page TCP holds ends instead of
 * hanging the test. Return: 0, the punch's errno, or -1 if the child was
 * killed (the punch was still waiting).
 */
static int punch_bounded(int fd, off_t off, off_t len)
{
	int st;
	pid_t pid = fork();

	if (pid < 0)
		return errno;
	if (!pid) {
		signal(SIGALRM, SIG_DFL);
		alarm(PUNCH_SECS);
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      off, len))
			_exit(errno);
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid)
		return errno;
	if (WIFSIGNALED(st))
		return -1;
	return WEXITSTATUS(st);
}

FIXTURE_SETUP(zcopy)
{
	const char *name = getenv("SODP_DEVICE");
	struct ibv_device_attr_ex ax = {};

	self->fd = -1;
	if (!name || !*name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	ASSERT_EQ(0, sodp_dev_open(&self->dev, name));
	ASSERT_EQ(0, ibv_query_device_ex(self->dev.ctx, NULL, &ax));
	if (!(ax.odp_caps.general_caps & IBV_ODP_SUPPORT) ||
	    !(ax.odp_caps.per_transport_caps.rc_odp_caps &
	      IBV_ODP_SUPPORT_READ))
		SKIP(return, "%s has no ODP READ", name);
	self->seed = sodp_seed(_metadata->name);
	self->tmo = self->dev.timeout_ms * 3;
}

FIXTURE_TEARDOWN(zcopy)
{
	int i;

	/* First, so that the pair can disconnect. */
	tc_undrop(self);
	rmem_restore(self);
	sodp_pair_destroy(&self->pair);
	sodp_mr_dereg(&self->fmr);
	sodp_mr_dereg(&self->lmr);
	if (self->map)
		munmap(self->map, ZC_LEN);
	if (self->lbuf)
		sodp_unmap(self->lbuf, ZC_LEN);
	if (self->fd >= 0)
		close(self->fd);
	if (self->path[0])
		unlink(self->path);
	for (i = 0; i < self->nreuse; i++) {
		char p[4200];

		snprintf(p, sizeof(p), "%s.r%d", self->path, i);
		unlink(p);
	}
	sodp_dev_close(&self->dev);
}

/*
 * A ZC_LEN file on the FS-DAX mount filled with the case's pattern,
 * mapped shared under an ODP MR the peer may READ, a READ sink on the
 * requester side, and the QP pair.
 */
static void dax_setup(struct __test_metadata *_metadata,
		      FIXTURE_DATA(zcopy) *self)
{
	const char *dir = getenv("SODP_DAX_DIR");
	uint8_t *back;
	struct statx stx;

	if (!dir || !*dir)
		SKIP(return, "SODP_DAX_DIR is not set (vm-run --pmem)");
	snprintf(self->path, sizeof(self->path), "%s/sodp_zcopy.%d", dir,
		 (int)getpid());
	self->fd = open(self->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, self->fd)
		TH_LOG("open(%s): %s", self->path, strerror(errno));
	ASSERT_EQ(0, statx(self->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS,
			   &stx));
	ASSERT_TRUE(!!(stx.stx_attributes & STATX_ATTR_DAX))
		TH_LOG("%s is not FS-DAX", dir);

	back = sodp_map_anon(ZC_LEN);
	ASSERT_NE(NULL, back);
	sodp_pattern_fill(back, ZC_LEN, self->seed, 0);
	ASSERT_EQ((ssize_t)ZC_LEN, pwrite(self->fd, back, ZC_LEN, 0));
	sodp_unmap(back, ZC_LEN);
	ASSERT_EQ(0, fsync(self->fd));

	self->map = mmap(NULL, ZC_LEN, PROT_READ | PROT_WRITE, MAP_SHARED,
			 self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->map);
	self->fmr = sodp_mr_reg(&self->dev, self->map, ZC_LEN,
				IBV_ACCESS_ON_DEMAND | SODP_ACCESS_RW);
	ASSERT_NE(NULL, self->fmr) TH_LOG("ODP MR: %s", strerror(errno));

	self->lbuf = sodp_map_anon(ZC_LEN);
	ASSERT_NE(NULL, self->lbuf);
	memset(self->lbuf, SENTINEL, ZC_LEN);
	self->lmr = sodp_mr_reg(&self->dev, self->lbuf, ZC_LEN,
				SODP_ACCESS_RW);
	ASSERT_NE(NULL, self->lmr);
	ASSERT_EQ(0, sodp_pair_connect(&self->dev, &self->pair));
}

static void post_read(struct __test_metadata *_metadata,
		      FIXTURE_DATA(zcopy) *self)
{
	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_READ,
				    WRID_READ, self->lbuf, ZC_LEN,
				    self->lmr->lkey, (uintptr_t)self->map,
				    self->fmr->rkey, 0));
}

static void expect_wc(struct __test_metadata *_metadata, struct ibv_cq *cq,
		      int timeout_ms, uint64_t wr_id,
		      enum ibv_wc_status status)
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
}

/*
 * The requester's pure ACKs are dropped (towards the responder's port,
 * IP total length exactly 20 bytes of IP header plus the TCP header: no
 * payload) while it READs 64 KiB from the file. The READ completes (the
 * requester's initial receive window is made large enough for all of it:
 * window updates are pure ACKs too), but the responder's TCP never sees
 * its data acknowledged and keeps it queued for retransmission.
 * Punching the range out of the file must still return at once, and the
 * mapping reads the hole afterwards. Before the fix the
 * retransmit queue held the DAX pages themselves and the punch waited in
 * the DAX layout-busy wait until the alarm killed it.
 */
TEST_F_TIMEOUT(zcopy, punch_with_acks_withheld, ZC_TIMEOUT)
{
	/*
	 * TCP header lengths in words of an ACK: timestamps, plus one to
	 * three SACK blocks (a D-SACK answers a retransmission).
	 */
	static const unsigned int ack_doff[] = { 8, 11, 13, 15 };
	char match[ACK_KINDS][128];
	long unacked;
	int i, err;

	if (self->dev.iwarp)
		ASSERT_EQ(0, rmem_raise(self));
	dax_setup(_metadata, self);
	if (_metadata->exit_code == KSFT_SKIP)
		return;
	if (self->dev.iwarp) {
		for (i = 0; i < ACK_KINDS; i++)
			snprintf(match[i], sizeof(match[i]),
				 "match ip dport %u 0xffff match u16 %u 0xffff at 2 match u8 %#x 0xf0 at 32",
				 srv_port(self), 20 + 4 * ack_doff[i],
				 ack_doff[i] << 4);
		ASSERT_EQ(0, tc_drop(_metadata, self, match, ACK_KINDS));
	}
	post_read(_metadata, self);
	expect_wc(_metadata, self->pair.cli.scq, self->tmo, WRID_READ,
		  IBV_WC_SUCCESS);
	ASSERT_PATTERN(self->lbuf, ZC_LEN, self->seed, 0);

	if (self->dev.iwarp) {
		/* The ACKs really are withheld: the data stays unacked. */
		usleep(300 * 1000);
		unacked = tcp_unacked(srv_port(self));
		TH_LOG("responder: %ld bytes unacknowledged", unacked);
		if (unacked < (long)ZC_LEN)
			sodp_run("tc -s filter show dev lo >&2; tc -s qdisc show dev lo >&2");
		ASSERT_LE((long)ZC_LEN, unacked);
	}

	err = punch_bounded(self->fd, 0, ZC_LEN);
	if (err < 0)
		TH_LOG("punch-hole still waiting after %d s", PUNCH_SECS);
	else if (err)
		TH_LOG("punch-hole failed: %s", strerror(err));
	ASSERT_EQ(0, err);
	ASSERT_BYTES(self->map, ZC_LEN, 0);
}

/* [physical start, end) of the first extent of @fd, or -1. */
static int first_extent(int fd, uint64_t *start, uint64_t *end)
{
	struct {
		struct fiemap fm;
		struct fiemap_extent fe[1];
	} f = {};

	f.fm.fm_length = ~0ull;
	f.fm.fm_flags = FIEMAP_FLAG_SYNC;
	f.fm.fm_extent_count = 1;
	if (ioctl(fd, FS_IOC_FIEMAP, &f.fm) || !f.fm.fm_mapped_extents)
		return -1;
	*start = f.fe[0].fe_physical;
	*end = f.fe[0].fe_physical + f.fe[0].fe_length;
	return 0;
}

#define REUSE_EXTENTS	256

/*
 * The sysfs file of ext4's reserved clusters for the file system of @fd:
 * free space that not even root's allocations take, which could be just
 * where the freed blocks are.
 */
static void resv_path(int fd, char *buf, size_t len)
{
	char link[256], tgt[256];
	struct stat st;
	ssize_t n;

	buf[0] = 0;
	if (fstat(fd, &st))
		return;
	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(st.st_dev),
		 minor(st.st_dev));
	n = readlink(link, tgt, sizeof(tgt) - 1);
	if (n <= 0)
		return;
	tgt[n] = 0;
	snprintf(buf, len, "/sys/fs/ext4/%s/reserved_clusters",
		 strrchr(tgt, '/') ? strrchr(tgt, '/') + 1 : tgt);
}

static long long sysfs_rw(const char *path, long long val)
{
	long long old = -1;
	FILE *f = fopen(path, "r+");

	if (!f)
		return -1;
	if (fscanf(f, "%lld", &old) != 1)
		old = -1;
	if (val >= 0) {
		rewind(f);
		fprintf(f, "%lld\n", val);
	}
	fclose(f);
	return old;
}

/*
 * Give the blocks [@start, @end) that the READ's file had to a new file
 * and write @seed's pattern into them, as if they were the file's data at
 * the READ's offsets: commit the journal (ext4 reuses freed blocks only
 * then), fallocate all free space, reserved clusters included, to one
 * file, find the blocks in its extents and write them. Return: the number of pages written, -1 on
 * error.
 */
static int reuse_blocks(FIXTURE_DATA(zcopy) *self, uint64_t seed,
			uint64_t start, uint64_t end)
{
	struct {
		struct fiemap fm;
		struct fiemap_extent fe[REUSE_EXTENTS];
	} *f = NULL;
	long pg = sodp_page_size();
	uint8_t *buf = NULL;
	int fd = -1, n = -1;
	long long old_resv;
	char p[4200], resv[300];
	uint64_t b;
	off_t len;

	sync();
	snprintf(p, sizeof(p), "%s.r%d", self->path, self->nreuse++);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		goto out;
	/* All of it, 1 MiB at a time and then page by page. */
	resv_path(fd, resv, sizeof(resv));
	old_resv = resv[0] ? sysfs_rw(resv, 0) : -1;
	for (len = 0; !fallocate(fd, 0, len, 1 << 20); len += 1 << 20)
		;
	for (; !fallocate(fd, 0, len, pg); len += pg)
		;
	if (old_resv >= 0)
		sysfs_rw(resv, old_resv);
	f = calloc(1, sizeof(*f));
	buf = sodp_map_anon(ZC_LEN);
	if (!f || !buf)
		goto out;
	sodp_pattern_fill(buf, ZC_LEN, seed, 0);
	f->fm.fm_length = ~0ull;
	f->fm.fm_flags = FIEMAP_FLAG_SYNC;
	f->fm.fm_extent_count = REUSE_EXTENTS;
	if (ioctl(fd, FS_IOC_FIEMAP, &f->fm))
		goto out;
	n = 0;
	for (b = start; b < end && b - start < ZC_LEN; b += pg) {
		unsigned int i;

		for (i = 0; i < f->fm.fm_mapped_extents; i++) {
			struct fiemap_extent *e = &f->fe[i];
			off_t lo;

			if (b < e->fe_physical ||
			    b >= e->fe_physical + e->fe_length)
				continue;
			lo = e->fe_logical + (b - e->fe_physical);
			if (pwrite(fd, buf + (b - start), pg, lo) == pg)
				n++;
			break;
		}
	}
	if (fsync(fd))
		n = -1;
out:
	if (buf)
		sodp_unmap(buf, ZC_LEN);
	free(f);
	if (fd >= 0)
		close(fd);
	return n;
}

/*
 * Everything the responder sends is dropped while the peer READs 64 KiB
 * from the file, until the READ response sits in the responder's TCP
 * retransmit queue. Then the range is punched out of the file, the file is
 * unmapped and unlinked and a new file takes its blocks over with other
 * data; only then are the drops lifted. The READ must complete with the
 * file's original content: what TCP retransmits is its own copy, not
 * whatever the blocks hold by then. Before the fix the punch waited for
 * TCP (see punch_with_acks_withheld), removing the file then freed blocks
 * still in TCP's queue (and warned in dax_disassociate_entry()), and the
 * retransmission sent the new file's data.
 */
TEST_F_TIMEOUT(zcopy, retransmit_after_block_reuse, ZC_TIMEOUT)
{
	uint64_t nseed = self->seed ^ 0x7e05e;
	uint64_t start = 0, end = 0;
	char match[1][128];
	long unacked = -1;
	int i, err, reused;

	if (!self->dev.iwarp)
		SKIP(return, "%s has no TCP: nothing keeps data to retransmit",
		     self->dev.name);
	dax_setup(_metadata, self);
	if (_metadata->exit_code == KSFT_SKIP)
		return;
	ASSERT_EQ(0, first_extent(self->fd, &start, &end));

	snprintf(match[0], sizeof(match[0]), "match ip sport %u 0xffff",
		 srv_port(self));
	ASSERT_EQ(0, tc_drop(_metadata, self, match, 1));
	post_read(_metadata, self);
	/* The response is with TCP when it is all unacknowledged. */
	for (i = 0; i < self->tmo / 10; i++) {
		unacked = tcp_unacked(srv_port(self));
		if (unacked >= (long)ZC_LEN)
			break;
		usleep(10 * 1000);
	}
	TH_LOG("responder: %ld bytes unacknowledged", unacked);
	ASSERT_LE((long)ZC_LEN, unacked);

	err = punch_bounded(self->fd, 0, ZC_LEN);
	if (err < 0)
		TH_LOG("punch-hole still waiting after %d s", PUNCH_SECS);
	else if (err)
		TH_LOG("punch-hole failed: %s", strerror(err));
	EXPECT_EQ(0, err);

	ASSERT_EQ(0, munmap(self->map, ZC_LEN));
	self->map = NULL;
	ASSERT_EQ(0, close(self->fd));
	self->fd = -1;
	ASSERT_EQ(0, unlink(self->path));
	/* The file's blocks were contiguous: its one extent is the READ. */
	ASSERT_LE(start + ZC_LEN, end);
	reused = reuse_blocks(self, nseed, start, end);
	TH_LOG("a new file took over %d of the %u pages", reused,
	       (unsigned int)(ZC_LEN / sodp_page_size()));
	ASSERT_LT(0, reused);

	tc_undrop(self);
	expect_wc(_metadata, self->pair.cli.scq, self->tmo, WRID_READ,
		  IBV_WC_SUCCESS);
	for (i = 0; i < (int)ZC_LEN; i += sodp_page_size())
		if (sodp_pattern_check(self->lbuf + i, sodp_page_size(),
				       nseed, i) == -1) {
			TH_LOG("the READ returned the new file's data at %d",
			       i);
			break;
		}
	ASSERT_PATTERN(self->lbuf, ZC_LEN, self->seed, 0);
}

/*
 * A remote WRITE into an ODP page the process made read-only fails: rxe
 * completes it with a remote access error; siw's receive deferral cannot
 * fault the page writable and terminates the connection, so a RECV posted
 * by the requester is flushed. Nothing lands in the page. Once the page is
 * writable again, a WRITE of the same bytes to the same address, on a new
 * connection of the same process and MR, must land. siw remembered the
 * failed page in per-QP state that nothing cleared; a QP that survives the
 * failure (the termination lost to a disconnect racing with the deferral)
 * failed every later miss at that address without a fault.
 */
TEST_F_TIMEOUT(zcopy, write_after_readonly, ZC_TIMEOUT)
{
	long pg = sodp_page_size();
	size_t off = 8, wlen = 64;
	uint8_t *dst, *src, *rbuf;
	struct ibv_mr *dmr, *smr;
	struct ibv_wc wc;

	dst = sodp_map_anon(2 * pg);
	src = sodp_map_anon(ZC_LEN);
	ASSERT_NE(NULL, dst);
	ASSERT_NE(NULL, src);
	self->lbuf = src;	/* the teardown unmaps it */
	memset(dst, SENTINEL, 2 * pg);
	sodp_pattern_fill(src, wlen, self->seed, 0);
	rbuf = src + pg / 2;
	dmr = sodp_mr_reg(&self->dev, dst, 2 * pg,
			  IBV_ACCESS_ON_DEMAND | SODP_ACCESS_RW);
	ASSERT_NE(NULL, dmr) TH_LOG("ODP MR: %s", strerror(errno));
	self->fmr = dmr;
	smr = sodp_mr_reg(&self->dev, src, pg, IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, smr);
	self->lmr = smr;
	ASSERT_EQ(0, mprotect(dst, pg, PROT_READ));

	ASSERT_EQ(0, sodp_pair_connect(&self->dev, &self->pair));
	ASSERT_EQ(0, sodp_post_recv(&self->pair.cli, WRID_RECV, rbuf, 64,
				    smr->lkey));
	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_WRITE, src, wlen, smr->lkey,
				    (uintptr_t)dst + off, dmr->rkey, 0));
	ASSERT_EQ(0, sodp_poll_one(self->pair.cli.scq, &wc, self->tmo));
	ASSERT_EQ(WRID_WRITE, wc.wr_id);
	if (self->dev.iwarp) {
		/* Unacknowledged: done when TCP took it, or flushed. */
		TH_LOG("WRITE completed with %s", ibv_wc_status_str(wc.status));
		expect_wc(_metadata, self->pair.cli.rcq, self->tmo, WRID_RECV,
			  IBV_WC_WR_FLUSH_ERR);
	} else {
		ASSERT_EQ(IBV_WC_REM_ACCESS_ERR, (int)wc.status)
			TH_LOG("WRITE completed with %s",
			       ibv_wc_status_str(wc.status));
	}
	ASSERT_BYTES(dst, 2 * pg, SENTINEL);

	ASSERT_EQ(0, mprotect(dst, pg, PROT_READ | PROT_WRITE));
	sodp_pair_destroy(&self->pair);
	ASSERT_EQ(0, sodp_pair_connect(&self->dev, &self->pair));
	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_WRITE, src, wlen, smr->lkey,
				    (uintptr_t)dst + off, dmr->rkey, 0));
	expect_wc(_metadata, self->pair.cli.scq, self->tmo, WRID_WRITE,
		  IBV_WC_SUCCESS);
	ASSERT_EQ(0, sodp_pair_sync(&self->pair));
	ASSERT_BYTES(dst, off, SENTINEL);
	ASSERT_PATTERN(dst + off, wlen, self->seed, 0);
	ASSERT_BYTES(dst + off + wlen, 2 * pg - off - wlen, SENTINEL);
	ASSERT_EQ(0, sodp_mr_dereg(&self->fmr));
	sodp_unmap(dst, 2 * pg);
}

TEST_HARNESS_MAIN
