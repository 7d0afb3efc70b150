// SPDX-License-Identifier: GPL-2.0
/*
 * rxe retransmission with late ACKs: multi-packet RDMA WRITEs and SENDs on
 * an RC QP whose local ACK timeout is shorter than the time its ACKs take
 * to come back, so that the requester retries while the responder's ACKs
 * of the first transmission are still on their way and they arrive while
 * the WQE they acknowledge is being sent again. Every work request must
 * complete successfully and every byte must arrive: a retry must resend
 * exactly the packets of the message, at their PSNs, however the ACKs
 * and the retries interleave.
 *
 * A QP that rxe connects to its own device loops its packets back inside
 * the driver, where no qdisc sees them, so the case makes a topology of its
 * own: a veth pair with an rxe device on each end, policy routing that
 * sends the traffic between their two (local) addresses over the pair
 * instead of lo, and a netem qdisc that delays everything the responder's
 * end sends. The QPs are connected with plain verbs (no CM). Everything is
 * removed again on teardown.
 *
 * Runs once per test run, with SODP_DEVICE naming any rxe device (SKIP on
 * iWARP); needs ip, tc (netem) and rdma from iproute2.
 * SODP_RXE_RETRY_ROUNDS sets the rounds of each case.
 */
#include "sodp_test.h"
#include <arpa/inet.h>
#include <time.h>

#define NET_A		"sodprta"	/* requester's netdev */
#define NET_B		"sodprtb"	/* responder's netdev, delayed egress */
#define RXE_A		"sodprxa"
#define RXE_B		"sodprxb"
#define ADDR_A		"10.77.0.1"
#define ADDR_B		"10.77.0.2"
#define TABLE_A		7701		/* route to ADDR_B over the pair */
#define TABLE_B		7702		/* route to ADDR_A over the pair */
#define RULE_PREF	10		/* ahead of the local table */
#define LOCAL_PREF	100		/* where the local table moves to */

#define ROUNDS_DEFAULT	6
#define NMSG		16		/* work requests per round */
#define MSG_LEN		(16 * 1024 + 1000)	/* 17 packets of MTU 1024 */
#define ACK_TIMEOUT	12		/* 4.096 us << 12 = 16.8 ms */
#define ACK_DELAY_MS	40		/* netem delay of the responder */
#define SLOT_MS		8		/* netem releases them in bursts */
#define QP_PSN		0x123456

/* One rxe device of the pair with its verbs objects. */
struct end {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	int gid_index;
	union ibv_gid gid;
	uint8_t *buf;
	size_t len;
	struct ibv_mr *mr;
};

FIXTURE(late_ack) {
	bool net_on;		/* the veth pair exists */
	bool rules_on;		/* the local rule was moved */
	bool rxe_on;		/* the two rxe devices exist */
	struct end a;		/* requester */
	struct end b;		/* responder */
	unsigned int rounds;
};

FIXTURE_VARIANT(late_ack) {
	enum ibv_wr_opcode opcode;
};

FIXTURE_VARIANT_ADD(late_ack, write) {
	.opcode = IBV_WR_RDMA_WRITE,
};

FIXTURE_VARIANT_ADD(late_ack, send) {
	.opcode = IBV_WR_SEND,
};

static int sysctl_set(const char *dev, const char *key, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/%s", dev,
		 key);
	return sodp_write_line(path, val);
}

static int mac_of(const char *dev, char *mac, size_t len)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/class/net/%s/address", dev);
	return sodp_read_line(path, mac, len);
}

/*
 * The veth pair, its addresses and the routing: each end reaches the
 * other's address through its own veth (tables TABLE_A/TABLE_B, looked up
 * before the local table for locally sent packets), accepts packets from a
 * local source address, and knows the other's MAC without ARP.
 */
static int net_setup(struct __test_metadata *_metadata,
		     FIXTURE_DATA(late_ack) *self)
{
	char mac_a[32], mac_b[32];

	sodp_run("ip link del " NET_A " 2>/dev/null");
	if (sodp_run("ip link add " NET_A " type veth peer name " NET_B))
		return -1;
	self->net_on = true;
	if (sodp_run("ip addr add " ADDR_A "/32 dev " NET_A) ||
	    sodp_run("ip addr add " ADDR_B "/32 dev " NET_B) ||
	    sodp_run("ip link set " NET_A " up") || sodp_run("ip link set " NET_B " up"))
		return -1;
	if (sysctl_set(NET_A, "accept_local", "1") ||
	    sysctl_set(NET_B, "accept_local", "1") ||
	    sysctl_set(NET_A, "rp_filter", "0") ||
	    sysctl_set(NET_B, "rp_filter", "0"))
		return -1;
	if (mac_of(NET_A, mac_a, sizeof(mac_a)) ||
	    mac_of(NET_B, mac_b, sizeof(mac_b)))
		return -1;
	if (sodp_run("ip neigh replace " ADDR_B " lladdr %s dev " NET_A
		" nud permanent", mac_b) ||
	    sodp_run("ip neigh replace " ADDR_A " lladdr %s dev " NET_B
		" nud permanent", mac_a))
		return -1;
	if (sodp_run("ip route add " ADDR_B " dev " NET_A " src " ADDR_A
		" table %d", TABLE_A) ||
	    sodp_run("ip route add " ADDR_A " dev " NET_B " src " ADDR_B
		" table %d", TABLE_B))
		return -1;
	if (sodp_run("ip rule add pref %d iif lo to " ADDR_B " lookup %d",
		     RULE_PREF, TABLE_A) ||
	    sodp_run("ip rule add pref %d iif lo to " ADDR_A " lookup %d",
		     RULE_PREF, TABLE_B))
		return -1;
	self->rules_on = true;
	if (sodp_run("ip rule add pref %d lookup local", LOCAL_PREF) ||
	    sodp_run("ip rule del pref 0 lookup local"))
		return -1;
	TH_LOG("route to " ADDR_B ":");
	sodp_run("ip route get " ADDR_B " from " ADDR_A " | sed 's/^/# /'");
	return 0;
}

static void net_teardown(FIXTURE_DATA(late_ack) *self)
{
	if (self->rules_on) {
		sodp_run("ip rule add pref 0 lookup local 2>/dev/null");
		sodp_run("ip rule del pref %d lookup local 2>/dev/null", LOCAL_PREF);
		sodp_run("ip rule del pref %d 2>/dev/null", RULE_PREF);
		sodp_run("ip rule del pref %d 2>/dev/null", RULE_PREF);
		self->rules_on = false;
	}
	if (self->net_on) {
		sodp_run("ip route flush table %d 2>/dev/null", TABLE_A);
		sodp_run("ip route flush table %d 2>/dev/null", TABLE_B);
		sodp_run("ip link del " NET_A " 2>/dev/null");
		self->net_on = false;
	}
}

/* The index of the RoCE v2 GID of @addr (IPv4) on @dev's port 1, or -1. */
static int gid_find(const char *dev, struct ibv_context *ctx,
		    const char *addr, union ibv_gid *gid)
{
	struct in_addr in;
	char path[160], type[32];
	int i;

	inet_pton(AF_INET, addr, &in);
	for (i = 0; i < 32; i++) {
		if (ibv_query_gid(ctx, 1, i, gid))
			break;
		if (memcmp(gid->raw, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) ||
		    memcmp(gid->raw + 12, &in, 4))
			continue;
		snprintf(path, sizeof(path),
			 "/sys/class/infiniband/%s/ports/1/gid_attrs/types/%d",
			 dev, i);
		if (!sodp_read_line(path, type, sizeof(type)) &&
		    !strcmp(type, "RoCE v2"))
			return i;
	}
	return -1;
}

static struct ibv_context *dev_open(const char *name)
{
	struct ibv_context *ctx = NULL;
	struct ibv_device **list;
	int i, n = 0;

	list = ibv_get_device_list(&n);
	if (!list)
		return NULL;
	for (i = 0; i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), name))
			ctx = ibv_open_device(list[i]);
	ibv_free_device_list(list);
	return ctx;
}

/* Open @name, wait for the GID of @addr, make PD, CQ, QP and a buffer MR. */
static int end_setup(struct __test_metadata *_metadata, struct end *e,
		     const char *name, const char *addr, size_t len)
{
	struct ibv_qp_init_attr init = {
		.qp_type = IBV_QPT_RC,
		.cap = {
			.max_send_wr = NMSG,
			.max_recv_wr = NMSG,
			.max_send_sge = 1,
			.max_recv_sge = 1,
		},
	};
	int i;

	e->ctx = dev_open(name);
	if (!e->ctx) {
		TH_LOG("cannot open %s", name);
		return -1;
	}
	/* roce_gid_mgmt adds the GID of an address from a work item. */
	for (i = 0; i < 100; i++) {
		e->gid_index = gid_find(name, e->ctx, addr, &e->gid);
		if (e->gid_index >= 0)
			break;
		usleep(50 * 1000);
	}
	if (e->gid_index < 0) {
		TH_LOG("%s has no RoCE v2 GID for %s", name, addr);
		return -1;
	}
	e->pd = ibv_alloc_pd(e->ctx);
	e->cq = e->pd ? ibv_create_cq(e->ctx, 2 * NMSG, NULL, NULL, 0) : NULL;
	if (!e->cq)
		return -1;
	init.send_cq = e->cq;
	init.recv_cq = e->cq;
	e->qp = ibv_create_qp(e->pd, &init);
	e->len = len;
	e->buf = sodp_map_anon(len);
	if (!e->qp || !e->buf)
		return -1;
	e->mr = ibv_reg_mr(e->pd, e->buf, len, SODP_ACCESS_RW);
	return e->mr ? 0 : -1;
}

static void end_teardown(struct end *e)
{
	if (e->mr)
		ibv_dereg_mr(e->mr);
	if (e->buf)
		sodp_unmap(e->buf, e->len);
	if (e->qp)
		ibv_destroy_qp(e->qp);
	if (e->cq)
		ibv_destroy_cq(e->cq);
	if (e->pd)
		ibv_dealloc_pd(e->pd);
	if (e->ctx)
		ibv_close_device(e->ctx);
	memset(e, 0, sizeof(*e));
}

/* INIT, RTR and RTS towards @peer, with local ACK timeout @timeout. */
static int qp_connect(struct end *e, struct end *peer, uint8_t timeout)
{
	struct ibv_qp_attr attr = {
		.qp_state = IBV_QPS_INIT,
		.pkey_index = 0,
		.port_num = 1,
		.qp_access_flags = IBV_ACCESS_REMOTE_WRITE |
				   IBV_ACCESS_REMOTE_READ,
	};

	if (ibv_modify_qp(e->qp, &attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		return -errno;

	memset(&attr, 0, sizeof(attr));
	attr.qp_state = IBV_QPS_RTR;
	attr.path_mtu = IBV_MTU_1024;
	attr.dest_qp_num = peer->qp->qp_num;
	attr.rq_psn = QP_PSN;
	attr.max_dest_rd_atomic = 1;
	attr.min_rnr_timer = 1;
	attr.ah_attr.is_global = 1;
	attr.ah_attr.grh.dgid = peer->gid;
	attr.ah_attr.grh.sgid_index = e->gid_index;
	attr.ah_attr.grh.hop_limit = 64;
	attr.ah_attr.port_num = 1;
	if (ibv_modify_qp(e->qp, &attr, IBV_QP_STATE | IBV_QP_AV |
			  IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		return -errno;

	memset(&attr, 0, sizeof(attr));
	attr.qp_state = IBV_QPS_RTS;
	attr.timeout = timeout;
	attr.retry_cnt = 7;
	attr.rnr_retry = 7;
	attr.sq_psn = QP_PSN;
	attr.max_rd_atomic = 1;
	if (ibv_modify_qp(e->qp, &attr, IBV_QP_STATE | IBV_QP_TIMEOUT |
			  IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
			  IBV_QP_MAX_QP_RD_ATOMIC))
		return -errno;
	return 0;
}

static unsigned int env_uint(const char *name, unsigned int dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : dflt;
}

/*
 * The two rxe devices on the veth pair and the connected QPs, then the
 * netem qdisc. Called from the test body, so that the teardown removes
 * whatever it made even when a step fails.
 */
static void topology_setup(struct __test_metadata *_metadata,
			   FIXTURE_DATA(late_ack) *self)
{
	ASSERT_EQ(0, net_setup(_metadata, self));
	sodp_run("rdma link del " RXE_A " 2>/dev/null");
	sodp_run("rdma link del " RXE_B " 2>/dev/null");
	ASSERT_EQ(0, sodp_run("rdma link add " RXE_A " type rxe netdev " NET_A));
	self->rxe_on = true;
	ASSERT_EQ(0, sodp_run("rdma link add " RXE_B " type rxe netdev " NET_B));
	ASSERT_EQ(0, end_setup(_metadata, &self->a, RXE_A, ADDR_A,
			       NMSG * MSG_LEN));
	ASSERT_EQ(0, end_setup(_metadata, &self->b, RXE_B, ADDR_B,
			       NMSG * MSG_LEN));
	ASSERT_EQ(0, qp_connect(&self->a, &self->b, ACK_TIMEOUT));
	ASSERT_EQ(0, qp_connect(&self->b, &self->a, ACK_TIMEOUT));
	/* Everything the responder sends: ACKs (and nothing else here). */
	ASSERT_EQ(0, sodp_run("tc qdisc add dev " NET_B " root netem delay %ums slot %ums %ums",
			      ACK_DELAY_MS, SLOT_MS, SLOT_MS));
}

FIXTURE_SETUP(late_ack)
{
	const char *name = getenv("SODP_DEVICE");
	struct ibv_device_attr_ex ax;
	bool iwarp = false;

	if (!name || !*name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	ASSERT_EQ(0, sodp_dev_probe(name, &ax, &iwarp));
	if (iwarp)
		SKIP(return, "%s: rxe only (the case makes rxe devices)", name);
	if (sodp_run("command -v ip && command -v tc && command -v rdma") != 0)
		SKIP(return, "ip, tc or rdma (iproute2) is missing");
	self->rounds = env_uint("SODP_RXE_RETRY_ROUNDS", ROUNDS_DEFAULT);
}

FIXTURE_TEARDOWN(late_ack)
{
	sodp_run("tc qdisc del dev " NET_B " root 2>/dev/null");
	end_teardown(&self->a);
	end_teardown(&self->b);
	if (self->rxe_on) {
		sodp_run("rdma link del " RXE_A " 2>/dev/null");
		sodp_run("rdma link del " RXE_B " 2>/dev/null");
		self->rxe_on = false;
	}
	net_teardown(self);
}

static int post_recv(struct end *e, uint64_t wr_id, size_t off)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)e->buf + off,
		.length = MSG_LEN,
		.lkey = e->mr->lkey,
	};
	struct ibv_recv_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
	}, *bad;

	return ibv_post_recv(e->qp, &wr, &bad);
}

static int post_one(struct end *a, struct end *b, enum ibv_wr_opcode opcode,
		    uint64_t wr_id, size_t off)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)a->buf + off,
		.length = MSG_LEN,
		.lkey = a->mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = opcode,
		.send_flags = IBV_SEND_SIGNALED,
	}, *bad;

	if (opcode == IBV_WR_RDMA_WRITE) {
		wr.wr.rdma.remote_addr = (uintptr_t)b->buf + off;
		wr.wr.rdma.rkey = b->mr->rkey;
	}
	return ibv_post_send(a->qp, &wr, &bad);
}

/*
 * Rounds of NMSG work requests of MSG_LEN bytes each, all posted at once:
 * every send completion must be a success, in order, every receive of a
 * SEND must have its length, and the responder's buffer must hold the
 * round's pattern byte for byte.
 */
TEST_F_TIMEOUT(late_ack, multi_packet, 120)
{
	bool send = variant->opcode == IBV_WR_SEND;
	struct end *a = &self->a, *b = &self->b;
	long long retries;
	unsigned int r, i;
	struct ibv_wc wc;
	ssize_t bad;
	uint64_t v;

	topology_setup(_metadata, self);
	for (r = 0; r < self->rounds; r++) {
		uint64_t seed = sodp_seed("late_ack") + r;

		sodp_pattern_fill(a->buf, a->len, seed, 0);
		memset(b->buf, 0, b->len);
		for (i = 0; send && i < NMSG; i++)
			ASSERT_EQ(0, post_recv(b, i, i * MSG_LEN));
		for (i = 0; i < NMSG; i++)
			ASSERT_EQ(0, post_one(a, b, variant->opcode, i,
					      i * MSG_LEN));
		for (i = 0; i < NMSG; i++) {
			ASSERT_EQ(0, sodp_poll_one(a->cq, &wc, 20000));
			if (wc.status != IBV_WC_SUCCESS)
				TH_LOG("round %u: work request %llu of %u: %s",
				       r, (unsigned long long)wc.wr_id, NMSG,
				       ibv_wc_status_str(wc.status));
			ASSERT_EQ(IBV_WC_SUCCESS, (int)wc.status);
			ASSERT_EQ((uint64_t)i, wc.wr_id);
		}
		for (i = 0; send && i < NMSG; i++) {
			ASSERT_EQ(0, sodp_poll_one(b->cq, &wc, 20000));
			ASSERT_EQ(IBV_WC_SUCCESS, (int)wc.status);
			ASSERT_EQ(IBV_WC_RECV, (int)wc.opcode);
			ASSERT_EQ((uint64_t)i, wc.wr_id);
			ASSERT_EQ((uint32_t)MSG_LEN, wc.byte_len);
		}
		bad = sodp_pattern_check(b->buf, b->len, seed, 0);
		if (bad >= 0)
			TH_LOG("round %u: byte %zd is %#x, expected %#x", r,
			       bad, b->buf[bad], sodp_pattern_byte(seed, bad));
		ASSERT_EQ(-1, bad);
	}
	/* The case must have made the requester retry. */
	ASSERT_EQ(0, sodp_hw_counter_get(RXE_A, "retry_exceeded_err", &v));
	ASSERT_EQ(0u, v);
	ASSERT_EQ(0, sodp_hw_counter_get(RXE_A, "completer_retry_err", &v));
	retries = v;
	TH_LOG("%u rounds, %lld retries", self->rounds, retries);
	ASSERT_LT(0, retries);
}

TEST_HARNESS_MAIN
