// SPDX-License-Identifier: GPL-2.0
/*
 * Baseline tests for the soft-RDMA devices sodp builds on (rxe, siw): the
 * device is there, RC SEND/RECV, RDMA WRITE (with immediate), READ and
 * atomics move data correctly through plain (pinned) MRs, bad input fails
 * with the errno and work completion status the 6.12 code gives, and the
 * FS-DAX / shared file mapping cases that stock pinning refuses behave as
 * the sodp pin_mode says they should.
 *
 * Run once per device with SODP_DEVICE=<ibdev> (test_sodp.sh does that).
 * Optional: SODP_ADDR, SODP_TIMEOUT_MS, SODP_DAX_DIR, SODP_EXT4_DIR,
 * SODP_TMPFS_DIR.
 */
#include "sodp_test.h"
#include <arpa/inet.h>
#include <sys/statfs.h>
#include <linux/magic.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX	0x00200000
#endif

#define WRID_SEND	0x53454e44ull
#define WRID_RECV	0x52454356ull
#define WRID_RDMA	0x52444d41ull
#define WRID_ATOMIC	0x41544f4dull

#define SODP_TEST_TIMEOUT	120	/* seconds per case, TCG guest */
#define SLACK			64	/* extra RECV room / guard bytes */
#define SENTINEL_CLI		0xc5
#define SENTINEL_SRV		0x5c

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
		TH_LOG("byte at offset %zd is 0x%02x, expected untouched 0x%02x", \
		       __off, __b[__off], __val);			\
	ASSERT_EQ(-1, __off);						\
} while (0)

/*
 * Wait for the next completion on @cq and check it. @opcode < 0 skips the
 * opcode (undefined in error completions), @byte_len < 0 the length.
 */
static void expect_wc(struct __test_metadata *_metadata, struct ibv_cq *cq,
		      int timeout_ms, uint64_t wr_id,
		      enum ibv_wc_status status, int opcode, int64_t byte_len)
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
	if (opcode >= 0)
		ASSERT_EQ(opcode, (int)wc.opcode);
	if (byte_len >= 0)
		ASSERT_EQ(byte_len, (int64_t)wc.byte_len);
}

/* [0, off) and [off + len, map_len) hold @sentinel, [off, off + len) data. */
static void expect_region(struct __test_metadata *_metadata,
			  const uint8_t *map, size_t map_len, size_t off,
			  size_t len, uint64_t seed, uint8_t sentinel)
{
	ASSERT_BYTES(map, off, sentinel);
	ASSERT_PATTERN(map + off, len, seed, 0);
	ASSERT_BYTES(map + off + len, map_len - off - len, sentinel);
}

static const char *sodp_device(void)
{
	const char *name = getenv("SODP_DEVICE");

	return name && *name ? name : NULL;
}

/*
 * Fixture for the data-path cases: a connected pair and one buffer on each
 * side, with the data at an offset that the variant chooses so that the MRs
 * start and end at unaligned addresses and cross pages.
 */
FIXTURE(xfer) {
	struct sodp_dev dev;
	struct sodp_pair pair;
	uint64_t seed;
	size_t map_len;
	uint8_t *cbuf;		/* requester (client) side */
	uint8_t *sbuf;		/* responder (server) side */
	void *aux;		/* one page for a RECV that is not the data */
	struct ibv_mr *cmr;
	struct ibv_mr *smr;
	struct ibv_mr *amr;
};

FIXTURE_VARIANT(xfer) {
	size_t size;
	size_t coff;		/* offset of the data in cbuf */
	size_t soff;		/* offset of the data in sbuf */
};

/* A single byte, the last one of a page on both sides. */
FIXTURE_VARIANT_ADD(xfer, byte) {
	.size = 1,
	.coff = 4095,
	.soff = 4095,
};

/* Exactly one aligned page. */
FIXTURE_VARIANT_ADD(xfer, page) {
	.size = 4096,
	.coff = 0,
	.soff = 0,
};

/* 1 MiB + 3 with different misalignments on the two sides. */
FIXTURE_VARIANT_ADD(xfer, mib_unaligned) {
	.size = (1 << 20) + 3,
	.coff = 3,
	.soff = 4093,
};

FIXTURE_SETUP(xfer)
{
	const char *name = sodp_device();
	long pg = sodp_page_size();
	size_t off = variant->coff > variant->soff ? variant->coff :
						     variant->soff;

	if (!name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	ASSERT_EQ(0, sodp_dev_open(&self->dev, name));
	self->seed = sodp_seed(_metadata->name) ^ variant->size;

	self->map_len = (off + variant->size + SLACK + pg - 1) / pg * pg;
	self->cbuf = sodp_map_anon(self->map_len);
	ASSERT_NE(NULL, self->cbuf);
	self->sbuf = sodp_map_anon(self->map_len);
	ASSERT_NE(NULL, self->sbuf);
	self->aux = sodp_map_anon(pg);
	ASSERT_NE(NULL, self->aux);
	memset(self->cbuf, SENTINEL_CLI, self->map_len);
	memset(self->sbuf, SENTINEL_SRV, self->map_len);
	memset(self->aux, SENTINEL_SRV, pg);

	ASSERT_EQ(0, sodp_pair_connect(&self->dev, &self->pair));
}

FIXTURE_TEARDOWN(xfer)
{
	sodp_mr_dereg(&self->cmr);
	sodp_mr_dereg(&self->smr);
	sodp_mr_dereg(&self->amr);
	sodp_pair_destroy(&self->pair);
	sodp_unmap(self->cbuf, self->map_len);
	sodp_unmap(self->sbuf, self->map_len);
	sodp_unmap(self->aux, sodp_page_size());
	sodp_dev_close(&self->dev);
}

/*
 * Register the client's data and the server's RECV buffer (SLACK bytes
 * larger), SEND the pattern and check both completions.
 */
static void xfer_send_once(struct __test_metadata *_metadata,
			   FIXTURE_DATA(xfer) *self, uint8_t *src,
			   uint8_t *dst, size_t size)
{
	int tmo = self->dev.timeout_ms;

	sodp_pattern_fill(src, size, self->seed, 0);
	self->cmr = sodp_mr_reg(&self->dev, src, size, IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, self->cmr);
	self->smr = sodp_mr_reg(&self->dev, dst, size + SLACK,
				IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, self->smr);

	ASSERT_EQ(0, sodp_post_recv(&self->pair.srv, WRID_RECV, dst,
				    size + SLACK, self->smr->lkey));
	ASSERT_EQ(0, sodp_post_send(&self->pair.cli, WRID_SEND, src, size,
				    self->cmr->lkey));

	expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_SEND,
		  IBV_WC_SUCCESS, IBV_WC_SEND, size);
	expect_wc(_metadata, self->pair.srv.rcq, tmo, WRID_RECV,
		  IBV_WC_SUCCESS, IBV_WC_RECV, size);
}

/*
 * SEND from the client into a RECV that is SLACK bytes larger than the
 * message: the RECV completion reports exactly the sent length, the data
 * arrives byte for byte and nothing around it is written.
 */
TEST_F_TIMEOUT(xfer, send_recv, SODP_TEST_TIMEOUT)
{
	size_t size = variant->size;
	uint8_t *src = self->cbuf + variant->coff;
	uint8_t *dst = self->sbuf + variant->soff;

	xfer_send_once(_metadata, self, src, dst, size);

	expect_region(_metadata, self->sbuf, self->map_len, variant->soff,
		      size, self->seed, SENTINEL_SRV);
	ASSERT_PATTERN(src, size, self->seed, 0);
}

/*
 * A SEND posted to a QP that is already in the error state completes with
 * WR_FLUSH_ERR and sends nothing. (siw left a user QP's send requests in
 * the mapped queue for ever: siw patch 0009. Receives of user QPs never
 * enter the kernel in librxe/libsiw, so nothing can flush those.) A first
 * SEND before the error proves the pair worked.
 */
TEST_F_TIMEOUT(xfer, post_after_error, SODP_TEST_TIMEOUT)
{
	struct ibv_qp_attr attr = { .qp_state = IBV_QPS_ERR };
	int tmo = self->dev.timeout_ms;
	size_t size = variant->size;
	uint8_t *src = self->cbuf + variant->coff;
	uint8_t *dst = self->sbuf + variant->soff;
	struct ibv_qp_init_attr init;

	xfer_send_once(_metadata, self, src, dst, size);
	memset(dst, SENTINEL_SRV, size);

	ASSERT_EQ(0, ibv_modify_qp(self->pair.cli.qp, &attr, IBV_QP_STATE));
	ASSERT_EQ(0, ibv_query_qp(self->pair.cli.qp, &attr, IBV_QP_STATE,
				  &init));
	ASSERT_EQ(IBV_QPS_ERR, (int)attr.qp_state);

	ASSERT_EQ(0, sodp_post_send(&self->pair.cli, WRID_SEND + 1, src, size,
				    self->cmr->lkey));
	expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_SEND + 1,
		  IBV_WC_WR_FLUSH_ERR, -1, -1);
	ASSERT_BYTES(dst, size, SENTINEL_SRV);
}

/*
 * RDMA WRITE into a remote MR that covers exactly the target range: the
 * requester completion is RDMA_WRITE with the length, and after a SEND/RECV
 * sync the remote range holds the data with its neighbours untouched.
 */
TEST_F_TIMEOUT(xfer, rdma_write, SODP_TEST_TIMEOUT)
{
	int tmo = self->dev.timeout_ms;
	size_t size = variant->size;
	uint8_t *src = self->cbuf + variant->coff;
	uint8_t *dst = self->sbuf + variant->soff;

	sodp_pattern_fill(src, size, self->seed, 0);
	self->cmr = sodp_mr_reg(&self->dev, src, size, IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, self->cmr);
	self->smr = sodp_mr_reg(&self->dev, dst, size, SODP_ACCESS_RW);
	ASSERT_NE(NULL, self->smr);

	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_RDMA, src, size, self->cmr->lkey,
				    (uintptr_t)dst, self->smr->rkey, 0));
	expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_RDMA,
		  IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, size);
	ASSERT_EQ(0, sodp_pair_sync(&self->pair));

	expect_region(_metadata, self->sbuf, self->map_len, variant->soff,
		      size, self->seed, SENTINEL_SRV);
}

/*
 * RDMA WRITE with immediate: the responder consumes a RECV and reports
 * RECV_RDMA_WITH_IMM with the immediate and the written length, while the
 * RECV buffer itself stays untouched. iWARP has no immediate data (libsiw
 * rejects the opcode at post time), so the case is skipped there.
 */
TEST_F_TIMEOUT(xfer, rdma_write_imm, SODP_TEST_TIMEOUT)
{
	int tmo = self->dev.timeout_ms;
	size_t size = variant->size;
	uint8_t *src = self->cbuf + variant->coff;
	uint8_t *dst = self->sbuf + variant->soff;
	__be32 imm = htonl(0x1d000000 | (uint32_t)(size & 0xffffff));
	struct ibv_wc wc;
	int ret;

	sodp_pattern_fill(src, size, self->seed, 0);
	self->cmr = sodp_mr_reg(&self->dev, src, size, IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, self->cmr);
	self->smr = sodp_mr_reg(&self->dev, dst, size, SODP_ACCESS_RW);
	ASSERT_NE(NULL, self->smr);
	self->amr = sodp_mr_reg(&self->dev, self->aux, sodp_page_size(),
				IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, self->amr);

	ASSERT_EQ(0, sodp_post_recv(&self->pair.srv, WRID_RECV, self->aux,
				    SLACK, self->amr->lkey));
	ret = sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE_WITH_IMM,
			     WRID_RDMA, src, size, self->cmr->lkey,
			     (uintptr_t)dst, self->smr->rkey, imm);
	if (ret && self->dev.iwarp)
		SKIP(return, "%s: no RDMA WRITE with immediate on iWARP (%s)",
		     self->dev.name, strerror(-ret));
	ASSERT_EQ(0, ret);

	expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_RDMA,
		  IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, size);
	ASSERT_EQ(0, sodp_poll_one(self->pair.srv.rcq, &wc, tmo));
	ASSERT_EQ(IBV_WC_SUCCESS, (int)wc.status);
	ASSERT_EQ(WRID_RECV, wc.wr_id);
	ASSERT_EQ(IBV_WC_RECV_RDMA_WITH_IMM, (int)wc.opcode);
	ASSERT_EQ((uint32_t)size, wc.byte_len);
	ASSERT_NE(0u, wc.wc_flags & IBV_WC_WITH_IMM);
	ASSERT_EQ(ntohl(imm), ntohl(wc.imm_data));

	expect_region(_metadata, self->sbuf, self->map_len, variant->soff,
		      size, self->seed, SENTINEL_SRV);
	ASSERT_BYTES(self->aux, sodp_page_size(), SENTINEL_SRV);
}

/*
 * RDMA READ from a remote MR registered for REMOTE_READ only (no write
 * access, so no FOLL_WRITE pin): the completion is RDMA_READ with the
 * length, the local range holds the data, its neighbours and the remote
 * source are unchanged.
 */
TEST_F_TIMEOUT(xfer, rdma_read, SODP_TEST_TIMEOUT)
{
	int tmo = self->dev.timeout_ms;
	size_t size = variant->size;
	uint8_t *dst = self->cbuf + variant->coff;
	uint8_t *src = self->sbuf + variant->soff;

	sodp_pattern_fill(src, size, self->seed, 0);
	self->cmr = sodp_mr_reg(&self->dev, dst, size, IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, self->cmr);
	self->smr = sodp_mr_reg(&self->dev, src, size, IBV_ACCESS_REMOTE_READ);
	ASSERT_NE(NULL, self->smr);

	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_READ,
				    WRID_RDMA, dst, size, self->cmr->lkey,
				    (uintptr_t)src, self->smr->rkey, 0));
	expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_RDMA,
		  IBV_WC_SUCCESS, IBV_WC_RDMA_READ, size);

	expect_region(_metadata, self->cbuf, self->map_len, variant->coff,
		      size, self->seed, SENTINEL_CLI);
	expect_region(_metadata, self->sbuf, self->map_len, variant->soff,
		      size, self->seed, SENTINEL_SRV);
}

#define NMAP	3

/*
 * Fixture for the remaining cases: the device and its PD; a test connects
 * a pair only if it needs one. Up to NMAP mappings and MRs are released by
 * the teardown.
 */
FIXTURE(sodp) {
	struct sodp_dev dev;
	struct sodp_pair pair;
	uint64_t seed;
	void *map[NMAP];
	size_t map_len[NMAP];
	struct ibv_mr *mr[NMAP];
	int fd;
	char pin_saved[16];	/* pin_mode_runtime: the mode to restore */
};

FIXTURE_SETUP(sodp)
{
	const char *name = sodp_device();

	self->fd = -1;
	if (!name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	ASSERT_EQ(0, sodp_dev_open(&self->dev, name));
	self->seed = sodp_seed(_metadata->name);
}

FIXTURE_TEARDOWN(sodp)
{
	int i;

	for (i = 0; i < NMAP; i++)
		sodp_mr_dereg(&self->mr[i]);
	sodp_pair_destroy(&self->pair);
	for (i = 0; i < NMAP; i++)
		sodp_unmap(self->map[i], self->map_len[i]);
	if (self->fd >= 0)
		close(self->fd);
	sodp_dev_close(&self->dev);
	if (self->pin_saved[0])
		sodp_pin_mode_write(self->pin_saved);
}

/* Map @len bytes into slot @i, filled with @fill; the teardown unmaps it. */
static uint8_t *map_slot(FIXTURE_DATA(sodp) *self, int i, size_t len,
			 uint8_t fill)
{
	self->map[i] = sodp_map_anon(len);
	if (!self->map[i])
		return NULL;
	self->map_len[i] = len;
	memset(self->map[i], fill, len);
	return self->map[i];
}

static void read_mac(struct __test_metadata *_metadata, const char *ifname,
		     uint8_t mac[6])
{
	char path[128];
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/sys/class/net/%s/address", ifname);
	f = fopen(path, "r");
	ASSERT_NE(NULL, f);
	n = fscanf(f, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1],
		   &mac[2], &mac[3], &mac[4], &mac[5]);
	fclose(f);
	ASSERT_EQ(6, n);
}

/*
 * The device under test is listed by ibv_get_device_list() with the
 * transport its driver implies, can be queried, has port 1 ACTIVE on an
 * Ethernet link, a GID table whose entries point at its netdev, and that
 * netdev has the IPv4 address used for the connections. For RoCE there is
 * a RoCEv2 GID that is the IPv4-mapped address; for siw, GID 0 carries the
 * netdev's MAC (siw_query_gid()).
 */
TEST_F(sodp, device_present)
{
	struct sodp_dev *dev = &self->dev;
	struct ibv_gid_entry ent[128];
	struct ibv_device_attr attr;
	struct ibv_port_attr port;
	struct ibv_device **list;
	int transport = -1;
	bool ndev_gid = false, ip_gid = false;
	union ibv_gid gid;
	unsigned int ifindex;
	uint8_t mac[6];
	ssize_t ngid;
	int i, n = 0;

	list = ibv_get_device_list(&n);
	ASSERT_NE(NULL, list);
	for (i = 0; i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), dev->name))
			transport = list[i]->transport_type;
	ibv_free_device_list(list);
	ASSERT_NE(-1, transport);
	if (!strncmp(dev->name, "siw", 3))
		ASSERT_EQ(IBV_TRANSPORT_IWARP, transport);
	if (!strncmp(dev->name, "rxe", 3))
		ASSERT_EQ(IBV_TRANSPORT_IB, transport);

	ASSERT_EQ(0, ibv_query_device(dev->ctx, &attr));
	ASSERT_LE(1, attr.phys_port_cnt);
	ASSERT_LT(0, attr.max_qp);
	ASSERT_LT(0, attr.max_cqe);
	ASSERT_LT(0, attr.max_mr);
	ASSERT_LT(0, attr.max_sge);
	ASSERT_NE(0ull, attr.max_mr_size);

	ASSERT_EQ(0, ibv_query_port(dev->ctx, 1, &port));
	ASSERT_EQ(IBV_PORT_ACTIVE, (int)port.state);
	ASSERT_EQ(IBV_LINK_LAYER_ETHERNET, port.link_layer);
	ASSERT_LE(1, port.gid_tbl_len);

	ASSERT_EQ(0, ibv_query_gid(dev->ctx, 1, 0, &gid));
	ASSERT_NE(0ull, gid.global.subnet_prefix | gid.global.interface_id);

	TH_LOG("%s: %s, netdev %s, %s, pin_mode %s", dev->name,
	       dev->iwarp ? "iWARP" : "RoCE", dev->ifname[0] ? dev->ifname :
	       "?", inet_ntoa(dev->addr.sin_addr),
	       sodp_pin_mode_str(sodp_pin_mode()));
	ASSERT_NE(0u, dev->addr.sin_addr.s_addr);
	ASSERT_NE(0, dev->ifname[0]);
	ifindex = if_nametoindex(dev->ifname);
	ASSERT_NE(0u, ifindex);

	ngid = ibv_query_gid_table(dev->ctx, ent, 128, 0);
	ASSERT_LT(0, ngid);
	for (i = 0; i < ngid; i++) {
		const uint8_t *raw = ent[i].gid.raw;

		if (ent[i].port_num != 1)
			continue;
		if (ent[i].ndev_ifindex == ifindex)
			ndev_gid = true;
		if (ent[i].gid_type == IBV_GID_TYPE_ROCE_V2 &&
		    !memcmp(raw, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) &&
		    !memcmp(raw + 12, &dev->addr.sin_addr, 4))
			ip_gid = true;
	}
	ASSERT_TRUE(ndev_gid);
	if (dev->iwarp) {
		read_mac(_metadata, dev->ifname, mac);
		ASSERT_EQ(0, memcmp(gid.raw, mac, sizeof(mac)));
	} else if (!getenv("SODP_ADDR")) {
		ASSERT_TRUE(ip_gid);
	}
}

static int64_t umems_now(struct __test_metadata *_metadata)
{
	int64_t v = -1;

	ASSERT_EQ(0, sodp_debugfs_get("umems", &v));
	return v;
}

/*
 * sodp.pin_mode is changed at run time through sysfs, reads back what was
 * written, and takes effect for the next registration: under pin a plain
 * MR is pinned (no sodp umem), under all the next one is served by sodp
 * (one umem more) and carries a remote WRITE byte for byte, while the MR
 * pinned before keeps working. A mode sodp does not know is refused with
 * EINVAL and changes nothing.
 */
TEST_F_TIMEOUT(sodp, pin_mode_runtime, SODP_TEST_TIMEOUT)
{
	const size_t len = 4 * 4096;
	enum sodp_pin_mode mode = sodp_pin_mode();
	uint8_t *pinned, *served, *src;
	struct ibv_wc wc;
	int64_t umems0;
	ssize_t bad;

	if (mode == SODP_PIN_ABSENT || mode == SODP_PIN_UNKNOWN)
		SKIP(return, "no sodp pin_mode parameter");
	if (geteuid())
		SKIP(return, "needs root");
	snprintf(self->pin_saved, sizeof(self->pin_saved), "%s",
		 sodp_pin_mode_str(mode));

	ASSERT_EQ(0, sodp_pin_mode_write("pin"));
	ASSERT_EQ((int)SODP_PIN_PIN, (int)sodp_pin_mode());
	umems0 = umems_now(_metadata);
	pinned = map_slot(self, 0, len, 0);
	ASSERT_NE(NULL, pinned);
	self->mr[0] = sodp_mr_reg(&self->dev, pinned, len, SODP_ACCESS_RW);
	ASSERT_NE(NULL, self->mr[0]);
	/* The source and the connection's own MRs: pinned too. */
	src = map_slot(self, 2, len, 0);
	ASSERT_NE(NULL, src);
	sodp_pattern_fill(src, len, self->seed, 0);
	self->mr[2] = sodp_mr_reg(&self->dev, src, len, IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, self->mr[2]);
	ASSERT_EQ(0, sodp_pair_connect(&self->dev, &self->pair));
	ASSERT_EQ(umems0, umems_now(_metadata));

	ASSERT_EQ(0, sodp_pin_mode_write("all"));
	ASSERT_EQ((int)SODP_PIN_ALL, (int)sodp_pin_mode());
	served = map_slot(self, 1, len, 0);
	ASSERT_NE(NULL, served);
	self->mr[1] = sodp_mr_reg(&self->dev, served, len, SODP_ACCESS_RW);
	ASSERT_NE(NULL, self->mr[1]);
	ASSERT_EQ(umems0 + 1, umems_now(_metadata));

	ASSERT_EQ(-EINVAL, sodp_pin_mode_write("bogus"));
	ASSERT_EQ((int)SODP_PIN_ALL, (int)sodp_pin_mode());

	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE, 1, src,
				    len, self->mr[2]->lkey, (uintptr_t)served,
				    self->mr[1]->rkey, 0));
	ASSERT_EQ(0, sodp_poll_one(self->pair.cli.scq, &wc,
				   self->dev.timeout_ms));
	ASSERT_EQ((int)IBV_WC_SUCCESS, (int)wc.status);
	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE, 2, src,
				    len, self->mr[2]->lkey, (uintptr_t)pinned,
				    self->mr[0]->rkey, 0));
	ASSERT_EQ(0, sodp_poll_one(self->pair.cli.scq, &wc,
				   self->dev.timeout_ms));
	ASSERT_EQ((int)IBV_WC_SUCCESS, (int)wc.status);
	/* Remote WRITE completions on siw come at transmit: sync first. */
	ASSERT_EQ(0, sodp_pair_sync(&self->pair));
	bad = sodp_pattern_check(served, len, self->seed, 0);
	ASSERT_EQ(-1, bad) TH_LOG("sodp-served MR: byte %zd differs", bad);
	bad = sodp_pattern_check(pinned, len, self->seed, 0);
	ASSERT_EQ(-1, bad) TH_LOG("pinned MR: byte %zd differs", bad);

	sodp_mr_dereg(&self->mr[1]);
	ASSERT_EQ(umems0, umems_now(_metadata));
	ASSERT_EQ(0, sodp_pin_mode_write(self->pin_saved));
	ASSERT_EQ((int)mode, (int)sodp_pin_mode());
	self->pin_saved[0] = 0;
}

/*
 * Registering a range with nothing mapped fails with EFAULT: ib_umem_get()
 * -> pin_user_pages_fast() finds no VMA. Under pin_mode=all a plain MR is
 * mirrored instead of pinned and may legitimately cover unmapped VA, so the
 * case is skipped there.
 */
TEST_F(sodp, reg_mr_unmapped)
{
	enum sodp_pin_mode mode = sodp_pin_mode();
	size_t len = 4 * sodp_page_size();
	void *p;
	int err;

	ASSERT_NE(SODP_PIN_UNKNOWN, (int)mode);
	if (mode == SODP_PIN_ALL)
		SKIP(return, "pin_mode=all may register unmapped VA");
	p = sodp_map_anon(len);
	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, munmap(p, len));

	self->mr[0] = sodp_mr_reg(&self->dev, p, len, SODP_ACCESS_RW);
	err = errno;
	ASSERT_EQ(NULL, self->mr[0]);
	ASSERT_EQ(EFAULT, err);
}

/*
 * A zero-length MR at a page-aligned, mapped address fails with EINVAL:
 * siw_reg_user_mr() checks !len, rxe gets it from ib_umem_get() (zero
 * pages). With an unaligned address ib_umem_get() would count one page and
 * succeed, hence the aligned address.
 */
TEST_F(sodp, reg_mr_zero_length)
{
	uint8_t *p = map_slot(self, 0, sodp_page_size(), 0);

	ASSERT_NE(NULL, p);
	EXPECT_REG_REFUSED(&self->dev, p, 0, SODP_ACCESS_RW, EINVAL);
}

/*
 * addr + length wraps around: ib_umem_get() rejects it with EINVAL before
 * touching anything (siw's own page count wraps to 0 first, harmlessly). No
 * pin mode may accept it.
 */
TEST_F(sodp, reg_mr_length_overflow)
{
	uint8_t *p = map_slot(self, 0, sodp_page_size(), 0);

	ASSERT_NE(NULL, p);
	EXPECT_REG_REFUSED(&self->dev, p, SIZE_MAX, SODP_ACCESS_RW, EINVAL);
}

/*
 * 64 TiB from a mapped page: 2^34 pages is more than ib_umem_get() accepts
 * (npages > UINT_MAX -> EINVAL, checked before pinning or the memlock
 * limit). Under pin_mode=all the MR is not pinned and a huge sparse range
 * is allowed, so the case is skipped there.
 */
TEST_F(sodp, reg_mr_huge_length)
{
	enum sodp_pin_mode mode = sodp_pin_mode();
	uint8_t *p = map_slot(self, 0, sodp_page_size(), 0);

	ASSERT_NE(NULL, p);
	ASSERT_NE(SODP_PIN_UNKNOWN, (int)mode);
	if (mode == SODP_PIN_ALL)
		SKIP(return, "pin_mode=all may register huge sparse ranges");
	EXPECT_REG_REFUSED(&self->dev, p, 1ull << 46, SODP_ACCESS_RW, EINVAL);
}

enum bad_write {
	BAD_RKEY,		/* key byte of the rkey changed */
	ACROSS_END,		/* starts inside the MR, ends past it */
	PAST_END,		/* starts at the MR's end */
};

/*
 * A 64-byte RDMA WRITE that the responder must reject. The remote MR is the
 * first page of a two-page mapping, so "past the end" is still mapped memory
 * that a missing bounds check would corrupt.
 *
 * What the requester sees differs by transport, as the 6.12 code gives it:
 * - RoCE (rxe): check_rkey() -> RESPST_ERR_RKEY_VIOLATION -> NAK with
 *   AETH_NAK_REM_ACC_ERR -> the WRITE completes with IBV_WC_REM_ACCESS_ERR
 *   and rxe_qp_error() moves the requester QP to error.
 * - iWARP (siw): WRITEs are not acknowledged; siw_qp_sq_process() completes
 *   the WRITE with SUCCESS once it is handed to TCP (siw_rdmap_complete():
 *   "TODO: Failed WRITEs need local error to be surfaced"). The responder
 *   (siw_proc_write(): invalid STag / siw_check_mem() bounds) sends a
 *   TERMINATE and drops the connection, and siw_qp_llp_close() moves the
 *   requester QP to error.
 * Either way the requester QP ends in error, which a RECV posted beforehand
 * shows as IBV_WC_WR_FLUSH_ERR. 64 bytes fit in one FPDU, so siw checks the
 * whole write before placing any of it: the remote memory stays untouched.
 */
static void bad_write(struct __test_metadata *_metadata,
		      FIXTURE_DATA(sodp) *self, enum bad_write kind)
{
	const uint32_t len = 64;
	int tmo = self->dev.timeout_ms;
	long pg = sodp_page_size();
	uint8_t *sbuf, *cbuf;
	uint64_t raddr;
	uint32_t rkey;

	sbuf = map_slot(self, 0, 2 * pg, SENTINEL_SRV);
	ASSERT_NE(NULL, sbuf);
	cbuf = map_slot(self, 1, pg, SENTINEL_CLI);
	ASSERT_NE(NULL, cbuf);
	sodp_pattern_fill(cbuf, len, self->seed, 0);
	self->mr[0] = sodp_mr_reg(&self->dev, sbuf, pg, SODP_ACCESS_RW);
	ASSERT_NE(NULL, self->mr[0]);
	self->mr[1] = sodp_mr_reg(&self->dev, cbuf, pg,
				  IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, self->mr[1]);
	ASSERT_EQ(0, sodp_pair_connect(&self->dev, &self->pair));

	rkey = self->mr[0]->rkey;
	raddr = (uintptr_t)sbuf;
	switch (kind) {
	case BAD_RKEY:
		rkey ^= 0xff;
		break;
	case ACROSS_END:
		raddr += pg - len / 2;
		break;
	case PAST_END:
		raddr += pg;
		break;
	}

	ASSERT_EQ(0, sodp_post_recv(&self->pair.cli, WRID_RECV,
				    cbuf + pg / 2, len, self->mr[1]->lkey));
	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_RDMA, cbuf, len, self->mr[1]->lkey,
				    raddr, rkey, 0));
	if (self->dev.iwarp)
		expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_RDMA,
			  IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, len);
	else
		expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_RDMA,
			  IBV_WC_REM_ACCESS_ERR, -1, -1);
	expect_wc(_metadata, self->pair.cli.rcq, tmo, WRID_RECV,
		  IBV_WC_WR_FLUSH_ERR, -1, -1);

	ASSERT_BYTES(sbuf, 2 * pg, SENTINEL_SRV);
}

/* RDMA WRITE with a wrong rkey (valid MR index, wrong key): see bad_write(). */
TEST_F_TIMEOUT(sodp, write_bad_rkey, SODP_TEST_TIMEOUT)
{
	bad_write(_metadata, self, BAD_RKEY);
}

/* RDMA WRITE that starts 32 bytes before the MR's end: see bad_write(). */
TEST_F_TIMEOUT(sodp, write_across_mr_end, SODP_TEST_TIMEOUT)
{
	bad_write(_metadata, self, ACROSS_END);
}

/* RDMA WRITE that starts right at the MR's end: see bad_write(). */
TEST_F_TIMEOUT(sodp, write_past_mr_end, SODP_TEST_TIMEOUT)
{
	bad_write(_metadata, self, PAST_END);
}

/*
 * FETCH_ADD and CMP_SWP (a hit, then a miss) on a remote 64-bit word: each
 * returns the old value into the local buffer with opcode FETCH_ADD /
 * COMP_SWAP and byte_len 8, and the remote word changes only as expected.
 * Skipped where the device reports no atomics (siw: atomic_cap 0).
 */
TEST_F_TIMEOUT(sodp, atomics, SODP_TEST_TIMEOUT)
{
	const uint64_t v0 = 0x0123456789abcdefull, add = 0x1111;
	const uint64_t swap = 0xfedcba9876543210ull;
	int tmo = self->dev.timeout_ms;
	long pg = sodp_page_size();
	uint64_t *remote, *result;

	if (self->dev.attr.atomic_cap == IBV_ATOMIC_NONE)
		SKIP(return, "%s reports no atomic support", self->dev.name);
	remote = (uint64_t *)map_slot(self, 0, pg, SENTINEL_SRV);
	ASSERT_NE(NULL, remote);
	result = (uint64_t *)map_slot(self, 1, pg, SENTINEL_CLI);
	ASSERT_NE(NULL, result);
	remote[1] = v0;
	self->mr[0] = sodp_mr_reg(&self->dev, remote, pg,
				  IBV_ACCESS_LOCAL_WRITE |
				  IBV_ACCESS_REMOTE_ATOMIC);
	ASSERT_NE(NULL, self->mr[0]);
	self->mr[1] = sodp_mr_reg(&self->dev, result, pg,
				  IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, self->mr[1]);
	ASSERT_EQ(0, sodp_pair_connect(&self->dev, &self->pair));

	ASSERT_EQ(0, sodp_post_atomic(&self->pair.cli,
				      IBV_WR_ATOMIC_FETCH_AND_ADD, WRID_ATOMIC,
				      &result[0], self->mr[1]->lkey,
				      (uintptr_t)&remote[1],
				      self->mr[0]->rkey, add, 0));
	expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_ATOMIC,
		  IBV_WC_SUCCESS, IBV_WC_FETCH_ADD, 8);
	ASSERT_EQ(v0, result[0]);
	ASSERT_EQ(v0 + add, remote[1]);

	ASSERT_EQ(0, sodp_post_atomic(&self->pair.cli,
				      IBV_WR_ATOMIC_CMP_AND_SWP, WRID_ATOMIC + 1,
				      &result[1], self->mr[1]->lkey,
				      (uintptr_t)&remote[1],
				      self->mr[0]->rkey, v0 + add, swap));
	expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_ATOMIC + 1,
		  IBV_WC_SUCCESS, IBV_WC_COMP_SWAP, 8);
	ASSERT_EQ(v0 + add, result[1]);
	ASSERT_EQ(swap, remote[1]);

	ASSERT_EQ(0, sodp_post_atomic(&self->pair.cli,
				      IBV_WR_ATOMIC_CMP_AND_SWP, WRID_ATOMIC + 2,
				      &result[2], self->mr[1]->lkey,
				      (uintptr_t)&remote[1],
				      self->mr[0]->rkey, v0, 0));
	expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_ATOMIC + 2,
		  IBV_WC_SUCCESS, IBV_WC_COMP_SWAP, 8);
	ASSERT_EQ(swap, result[2]);
	ASSERT_EQ(swap, remote[1]);

	ASSERT_BYTES(remote, sizeof(*remote), SENTINEL_SRV);
	ASSERT_BYTES(&remote[2], pg - 2 * sizeof(*remote), SENTINEL_SRV);
	ASSERT_BYTES(&result[3], pg - 3 * sizeof(*result), SENTINEL_CLI);
}

enum file_kind {
	FILE_DAX,		/* FS-DAX file: SODP_DAX_DIR */
	FILE_EXT4,		/* ext4 page-cache file: SODP_EXT4_DIR */
	FILE_TMPFS,		/* shmem file: SODP_TMPFS_DIR */
};

#define FILE_PAGES	16

/*
 * Register a MAP_SHARED, PROT_READ|PROT_WRITE mapping of a file as a plain
 * MR with remote write access.
 *
 * Stock pinning (ib_umem_get(): FOLL_LONGTERM | FOLL_WRITE) refuses two of
 * the three, in mm/gup.c check_vma_flags():
 * - FS-DAX: vma_is_fsdax() -> EOPNOTSUPP (checked before anything else);
 * - ext4: writable_file_mapping_allowed() is false because the VMA needs
 *   dirty tracking (ext4 has ->page_mkwrite) -> EFAULT;
 * - tmpfs: shmem needs no dirty tracking, so pinning is allowed.
 * With sodp's pin_mode=auto or all the refused ones fall back to a mirrored
 * MR and must work. When registration succeeds an RDMA WRITE lands in the
 * middle of the file, unaligned and across pages, and after munmap pread()
 * must see it with the rest of the file unchanged.
 */
static void file_mr(struct __test_metadata *_metadata,
		    FIXTURE_DATA(sodp) *self, enum file_kind kind)
{
	static const char * const envs[] = {
		[FILE_DAX] = "SODP_DAX_DIR",
		[FILE_EXT4] = "SODP_EXT4_DIR",
		[FILE_TMPFS] = "SODP_TMPFS_DIR",
	};
	const char *dir = getenv(envs[kind]);
	enum sodp_pin_mode mode = sodp_pin_mode();
	long pg = sodp_page_size();
	size_t len = FILE_PAGES * pg;
	size_t woff = pg + 5, wlen = 3 * pg + 7;
	uint64_t fseed = self->seed ^ 0xf11e;
	int tmo = self->dev.timeout_ms;
	bool dax, expect_ok;
	int expect_err = 0, err;
	struct statfs sfs;
	struct statx stx;
	uint8_t *map, *cbuf, *back;
	char path[4096];

	if (!dir || !*dir)
		SKIP(return, "%s is not set", envs[kind]);
	ASSERT_NE(SODP_PIN_UNKNOWN, (int)mode);

	snprintf(path, sizeof(path), "%s/sodp_basic.XXXXXX", dir);
	self->fd = mkstemp(path);
	ASSERT_LE(0, self->fd)
		TH_LOG("mkstemp(%s): %s", path, strerror(errno));
	ASSERT_EQ(0, unlink(path));

	ASSERT_EQ(0, fstatfs(self->fd, &sfs));
	ASSERT_EQ(0, statx(self->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS,
			   &stx));
	dax = stx.stx_attributes & STATX_ATTR_DAX;
	switch (kind) {
	case FILE_DAX:
		ASSERT_TRUE(dax) TH_LOG("%s is not FS-DAX", dir);
		expect_err = EOPNOTSUPP;
		break;
	case FILE_EXT4:
		ASSERT_EQ(EXT4_SUPER_MAGIC, sfs.f_type);
		ASSERT_FALSE(dax) TH_LOG("%s is FS-DAX", dir);
		expect_err = EFAULT;
		break;
	case FILE_TMPFS:
		ASSERT_EQ(TMPFS_MAGIC, sfs.f_type);
		break;
	}
	expect_ok = kind == FILE_TMPFS || mode == SODP_PIN_AUTO ||
		    mode == SODP_PIN_ALL;

	back = map_slot(self, 2, len, 0);
	ASSERT_NE(NULL, back);
	sodp_pattern_fill(back, len, fseed, 0);
	ASSERT_EQ((ssize_t)len, pwrite(self->fd, back, len, 0));

	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, map);
	self->map[0] = map;
	self->map_len[0] = len;

	self->mr[0] = sodp_mr_reg(&self->dev, map, len, SODP_ACCESS_RW);
	err = errno;
	if (!expect_ok) {
		if (self->mr[0])
			TH_LOG("registration succeeded with pin_mode %s",
			       sodp_pin_mode_str(mode));
		ASSERT_EQ(NULL, self->mr[0]);
		ASSERT_EQ(expect_err, err)
			TH_LOG("errno %d (%s)", err, strerror(err));
		ASSERT_PATTERN(map, len, fseed, 0);
		return;
	}
	ASSERT_NE(NULL, self->mr[0])
		TH_LOG("pin_mode %s: %s", sodp_pin_mode_str(mode),
		       strerror(err));

	cbuf = map_slot(self, 1, 4 * pg, SENTINEL_CLI);
	ASSERT_NE(NULL, cbuf);
	sodp_pattern_fill(cbuf, wlen, self->seed, 0);
	self->mr[1] = sodp_mr_reg(&self->dev, cbuf, wlen,
				  IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, self->mr[1]);
	ASSERT_EQ(0, sodp_pair_connect(&self->dev, &self->pair));

	ASSERT_EQ(0, sodp_post_rdma(&self->pair.cli, IBV_WR_RDMA_WRITE,
				    WRID_RDMA, cbuf, wlen, self->mr[1]->lkey,
				    (uintptr_t)map + woff, self->mr[0]->rkey,
				    0));
	expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_RDMA,
		  IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, wlen);
	ASSERT_EQ(0, sodp_pair_sync(&self->pair));

	/* The CPU sees the write through the mapping ... */
	ASSERT_PATTERN(map + woff, wlen, self->seed, 0);

	/* ... and the file has it once the MR and the mapping are gone. */
	ASSERT_EQ(0, sodp_mr_dereg(&self->mr[0]));
	ASSERT_EQ(0, munmap(map, len));
	self->map[0] = NULL;
	memset(back, 0, len);
	ASSERT_EQ((ssize_t)len, pread(self->fd, back, len, 0));
	ASSERT_PATTERN(back, woff, fseed, 0);
	ASSERT_PATTERN(back + woff, wlen, self->seed, 0);
	ASSERT_PATTERN(back + woff + wlen, len - woff - wlen, fseed,
		       woff + wlen);
}

/* Plain MR on an FS-DAX shared mapping: see file_mr(). */
TEST_F_TIMEOUT(sodp, fsdax_shared_mr, SODP_TEST_TIMEOUT)
{
	file_mr(_metadata, self, FILE_DAX);
}

/* Plain MR on a shared writable ext4 (page cache) mapping: see file_mr(). */
TEST_F_TIMEOUT(sodp, ext4_shared_mr, SODP_TEST_TIMEOUT)
{
	file_mr(_metadata, self, FILE_EXT4);
}

/* Plain MR on a shared tmpfs mapping, allowed by stock pinning too. */
TEST_F_TIMEOUT(sodp, tmpfs_shared_mr, SODP_TEST_TIMEOUT)
{
	file_mr(_metadata, self, FILE_TMPFS);
}

TEST_HARNESS_MAIN
