// SPDX-License-Identifier: GPL-2.0
/*
 * A SEND that the peer received completes successfully, even when the
 * peer closes the connection at once.
 *
 * siw hands the last FPDU of a WQE to TCP and only then asks whether the
 * connection went down meanwhile (tx_suspend, set by the socket's
 * state_change callback when the peer's FIN comes in). A FIN taken in
 * between (release_sock() at the end of that very sendmsg() runs the
 * socket backlog) used to fail the whole WQE with IBV_WC_LOC_QP_OP_ERR,
 * although every byte of it had been sent and received. perftest -R saw it
 * as "Bad wc status 2" on its exchange QP when its peer exited right after
 * the last message of a run.
 *
 * The FIN is brought in exactly there: the receiving thread sleeps in
 * poll() on its receive CQ's channel at SCHED_FIFO on the sender's CPU
 * with full kernel preemption. The loopback receive softirq inside the
 * sender's sendmsg() wakes it and it preempts the sender right there,
 * takes the RECV and disconnects, which sends the FIN while the sender
 * still owns its socket; then it ends and the sender goes on.
 *
 * siw only (other devices skip); needs root and a kernel with dynamic
 * preemption (/sys/kernel/debug/sched/preempt, switched to "full" for
 * the case and back). The send buffer is an ODP MR, as perftest --odp
 * has; the receive buffer is mirrored by a first message before the
 * measured one, so that its placement is not deferred to a work item.
 */
#include "sodp_test.h"
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define WRID_SEND	0x53454e44ull
#define WRID_RECV	0x52454356ull

#define MSG_LEN		256u	/* more than siw sends inline in a header */
#define ROUNDS		5
#define PREEMPT		"/sys/kernel/debug/sched/preempt"

/* What the receiving thread saw. */
struct closer {
	struct sodp_pair *pair;
	struct ibv_comp_channel *rch;
	int timeout_ms;
	atomic_int waiting;	/* it is about to sleep in poll() */
	int err;		/* 0, or where it failed (negative errno) */
	struct ibv_wc wc;	/* its RECV */
};

/* Sleep until the RECV, take it and disconnect at once. */
static void *closer_run(void *arg)
{
	struct closer *c = arg;
	struct pollfd pfd = { .fd = c->rch->fd, .events = POLLIN };
	struct ibv_cq *cq;
	void *ctx;
	int n;

	atomic_store(&c->waiting, 1);
	n = poll(&pfd, 1, c->timeout_ms);
	if (n != 1) {
		c->err = n ? -errno : -ETIMEDOUT;
		return NULL;
	}
	if (ibv_get_cq_event(c->rch, &cq, &ctx)) {
		c->err = -EIO;
		return NULL;
	}
	ibv_ack_cq_events(cq, 1);
	if (ibv_poll_cq(cq, 1, &c->wc) != 1) {
		c->err = -ENOMSG;
		return NULL;
	}
	if (rdma_disconnect(c->pair->srv.id))
		c->err = -errno;
	return NULL;
}

/* The current preemption model, as "(full)" marks it, into @buf. */
static int preempt_get(char *buf, size_t len)
{
	char line[128], *open, *close;
	FILE *f = fopen(PREEMPT, "r");

	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	open = strchr(line, '(');
	close = open ? strchr(open, ')') : NULL;
	if (!close || (size_t)(close - open) > len)
		return -EINVAL;
	memcpy(buf, open + 1, close - open - 1);
	buf[close - open - 1] = '\0';
	return 0;
}

static int preempt_set(const char *mode)
{
	FILE *f = fopen(PREEMPT, "w");
	int ret = 0;

	if (!f)
		return -errno;
	if (fputs(mode, f) < 0)
		ret = -EIO;
	if (fclose(f))
		ret = -errno;
	return ret;
}

FIXTURE(peer_close) {
	struct sodp_dev dev;
	struct sodp_pair pair;
	struct ibv_comp_channel *rch;
	char preempt[32];	/* the model to restore, "" if untouched */
	uint8_t *sbuf;
	uint8_t *rbuf;
	struct ibv_mr *smr;
	struct ibv_mr *rmr;
	size_t len;
};

FIXTURE_SETUP(peer_close)
{
	const char *name = getenv("SODP_DEVICE");

	if (!name || !*name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	ASSERT_EQ(0, sodp_dev_open(&self->dev, name));
	if (!self->dev.iwarp)
		SKIP(return, "%s is not siw", name);
	if (!(self->dev.odp.general_caps & IBV_ODP_SUPPORT))
		SKIP(return, "%s has no ODP", name);
	if (preempt_get(self->preempt, sizeof(self->preempt)))
		SKIP(return, "no %s: cannot switch to full preemption",
		     PREEMPT);
	if (preempt_set("full")) {
		self->preempt[0] = '\0';
		SKIP(return, "cannot switch %s to full", PREEMPT);
	}

	self->len = sodp_page_size();
	self->sbuf = sodp_map_anon(self->len);
	self->rbuf = sodp_map_anon(self->len);
	ASSERT_NE(NULL, self->sbuf);
	ASSERT_NE(NULL, self->rbuf);
	self->rch = ibv_create_comp_channel(self->dev.ctx);
	ASSERT_NE(NULL, self->rch);
}

FIXTURE_TEARDOWN(peer_close)
{
	sodp_pair_destroy(&self->pair);
	sodp_mr_dereg(&self->smr);
	sodp_mr_dereg(&self->rmr);
	if (self->rch)
		ibv_destroy_comp_channel(self->rch);
	if (self->sbuf)
		sodp_unmap(self->sbuf, self->len);
	if (self->rbuf)
		sodp_unmap(self->rbuf, self->len);
	if (self->preempt[0])
		preempt_set(self->preempt);
	sodp_dev_close(&self->dev);
}

/* Wait for one completion on @cq and check it. */
static void expect_wc(struct __test_metadata *_metadata, struct ibv_cq *cq,
		      int timeout_ms, uint64_t wr_id,
		      enum ibv_wc_status status)
{
	struct ibv_wc wc;

	ASSERT_EQ(0, sodp_poll_one(cq, &wc, timeout_ms));
	if (wc.status != status || wc.wr_id != wr_id)
		TH_LOG("wr_id %#llx status %s (%d), expected %#llx %s",
		       (unsigned long long)wc.wr_id,
		       ibv_wc_status_str(wc.status), wc.status,
		       (unsigned long long)wr_id, ibv_wc_status_str(status));
	ASSERT_EQ(status, wc.status);
	ASSERT_EQ(wr_id, wc.wr_id);
}

/*
 * ROUNDS connections: on each, one message to mirror the receive buffer,
 * then one that the receiving thread takes and disconnects on, as
 * described at the top. Both SENDs complete successfully, and the second
 * arrived byte for byte.
 */
TEST_F_TIMEOUT(peer_close, send, 300)
{
	struct sodp_pair_opts opts = { .srv_rch = self->rch };
	struct sched_param sp = { .sched_priority = 10 };
	const int explicit = PTHREAD_EXPLICIT_SCHED;
	int tmo = self->dev.timeout_ms;
	pthread_attr_t attr;
	struct closer c;
	cpu_set_t cpus;
	pthread_t thr;
	uint64_t seed;
	int round, cpu;

	/* Sender and receiving thread on one CPU. */
	cpu = sched_getcpu();
	ASSERT_LE(0, cpu);
	CPU_ZERO(&cpus);
	CPU_SET(cpu, &cpus);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpus), &cpus));

	self->smr = sodp_mr_reg(&self->dev, self->sbuf, self->len,
				IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_ON_DEMAND);
	ASSERT_NE(NULL, self->smr);
	self->rmr = sodp_mr_reg(&self->dev, self->rbuf, self->len,
				IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, self->rmr);

	for (round = 0; round < ROUNDS; round++) {
		seed = sodp_seed(_metadata->name) + round;
		ASSERT_EQ(0, sodp_pair_connect_opts(&self->dev, &self->pair,
						    &opts));

		/* The first message: the receive buffer gets mirrored. */
		sodp_pattern_fill(self->sbuf, MSG_LEN, seed, MSG_LEN);
		ASSERT_EQ(0, sodp_post_recv(&self->pair.srv, WRID_RECV,
					    self->rbuf, MSG_LEN,
					    self->rmr->lkey));
		ASSERT_EQ(0, sodp_post_send(&self->pair.cli, WRID_SEND,
					    self->sbuf, MSG_LEN,
					    self->smr->lkey));
		expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_SEND,
			  IBV_WC_SUCCESS);
		expect_wc(_metadata, self->pair.srv.rcq, tmo, WRID_RECV,
			  IBV_WC_SUCCESS);

		/* The second, which the peer closes on. */
		sodp_pattern_fill(self->sbuf, MSG_LEN, seed, 0);
		memset(self->rbuf, 0, MSG_LEN);
		ASSERT_EQ(0, sodp_post_recv(&self->pair.srv, WRID_RECV,
					    self->rbuf, MSG_LEN,
					    self->rmr->lkey));
		ASSERT_EQ(0, ibv_req_notify_cq(self->pair.srv.rcq, 0));

		memset(&c, 0, sizeof(c));
		c.pair = &self->pair;
		c.rch = self->rch;
		c.timeout_ms = tmo;
		ASSERT_EQ(0, pthread_attr_init(&attr));
		ASSERT_EQ(0, pthread_attr_setinheritsched(&attr, explicit));
		ASSERT_EQ(0, pthread_attr_setschedpolicy(&attr, SCHED_FIFO));
		ASSERT_EQ(0, pthread_attr_setschedparam(&attr, &sp));
		ASSERT_EQ(0, pthread_attr_setaffinity_np(&attr, sizeof(cpus),
							 &cpus));
		ASSERT_EQ(0, pthread_create(&thr, &attr, closer_run, &c));
		pthread_attr_destroy(&attr);
		/* It runs first on this CPU until it sleeps in poll(). */
		while (!atomic_load(&c.waiting))
			sched_yield();

		ASSERT_EQ(0, sodp_post_send(&self->pair.cli, WRID_SEND,
					    self->sbuf, MSG_LEN,
					    self->smr->lkey));
		ASSERT_EQ(0, pthread_join(thr, NULL));
		ASSERT_EQ(0, c.err);
		if (c.wc.status != IBV_WC_SUCCESS)
			TH_LOG("round %d: RECV status %s", round,
			       ibv_wc_status_str(c.wc.status));
		ASSERT_EQ(IBV_WC_SUCCESS, (int)c.wc.status);
		ASSERT_EQ(WRID_RECV, c.wc.wr_id);
		ASSERT_EQ(MSG_LEN, c.wc.byte_len);
		ASSERT_EQ(-1, sodp_pattern_check(self->rbuf, MSG_LEN, seed, 0));

		/* The SEND it received: no error for the closing. */
		TH_LOG("round %d: peer has the message and closed", round);
		expect_wc(_metadata, self->pair.cli.scq, tmo, WRID_SEND,
			  IBV_WC_SUCCESS);
		sodp_pair_destroy(&self->pair);
	}
}

TEST_HARNESS_MAIN
