/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared helpers for the sodp selftests: open the soft-RDMA device under test
 * (SODP_DEVICE), connect an RC QP pair to itself through librdmacm, post work
 * requests, poll completions with a deadline and fill/verify buffers with a
 * deterministic pattern.
 *
 * Every helper returns 0 or a negative errno and prints a "# "-prefixed
 * diagnostic line on failure, so that test bodies can simply
 * ASSERT_EQ(0, helper(...)). Nothing here ever blocks without a timeout.
 */
#ifndef SODP_LIB_H
#define SODP_LIB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <net/if.h>
#include <netinet/in.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

/*
 * libibverbs exports the advise_mr command for providers
 * (IBVERBS_PRIVATE_34), and librxe/libsiw 44 have no advise_mr of their
 * own: the tests call the kernel directly. Returns 0 or an errno.
 */
int ibv_cmd_advise_mr(struct ibv_pd *pd, enum ibv_advise_mr_advice advice,
		      uint32_t flags, struct ibv_sge *sg_list, uint32_t num_sge);

/* Default deadline of one wait (CQ poll, CM event); SODP_TIMEOUT_MS overrides. */
#define SODP_TIMEOUT_MS_DEFAULT	10000

/* Access flags of a plain data MR that either side may read or write. */
#define SODP_ACCESS_RW	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | \
			 IBV_ACCESS_REMOTE_READ)

/* The wr_id of the work requests sodp_pair_sync() posts. */
#define SODP_WRID_SYNC	0x5d0b5d0b5d0b0000ull

/* Q_Key of the UD QPs of sodp_ud_create(); room for the GRH of a UD RECV. */
#define SODP_UD_QKEY	0x50d0a11dU
#define SODP_GRH_LEN	40

/* Debugfs directory of the sodp core's global counters. */
#define SODP_DEBUGFS	"/sys/kernel/debug/sodp"

struct sodp_dev {
	char name[IBV_SYSFS_NAME_MAX];	/* SODP_DEVICE */
	struct ibv_context **cm_devs;	/* rdma_get_devices(), owns ctx */
	struct ibv_context *ctx;	/* librdmacm's context for @name */
	bool iwarp;			/* transport is iWARP (siw) */
	struct ibv_device_attr attr;
	struct ibv_odp_caps odp;	/* all 0 without ibv_query_device_ex */
	struct ibv_port_attr port_attr;	/* port 1 */
	struct ibv_pd *pd;
	char ifname[IF_NAMESIZE];	/* netdev of port 1, "" if unknown */
	struct sockaddr_in addr;	/* IPv4 of the device, port 0 */
	int timeout_ms;			/* deadline of one wait */
};

/* One side of a connection; its QP is id->qp. */
struct sodp_end {
	struct rdma_cm_id *id;
	struct ibv_cq *scq;		/* send completions */
	struct ibv_cq *rcq;		/* receive completions */
	struct ibv_qp *qp;
};

/*
 * A connected RC QP pair on one device: @cli is the active (connecting)
 * side and is the requester in the tests, @srv the passive (accepting) side
 * and the responder. Both share the device's PD, so a key of an MR is valid
 * on either side.
 */
struct sodp_pair {
	struct sodp_dev *dev;
	struct rdma_event_channel *lch;	/* listener and @srv events */
	struct rdma_event_channel *cch;	/* @cli events */
	struct rdma_cm_id *listen_id;
	struct sodp_end cli;
	struct sodp_end srv;
	struct ibv_srq *srv_srq;	/* @srv receives from it, not owned */
	struct ibv_comp_channel *srv_rch; /* @srv.rcq reports to it, not owned */
	bool connected;
	void *sync_buf;			/* one page, see sodp_pair_sync() */
	struct ibv_mr *sync_mr;
	uint64_t sync_seq;
};

/* Options of sodp_pair_connect_opts(); zeroed means sodp_pair_connect(). */
struct sodp_pair_opts {
	struct ibv_srq *srv_srq;	/* the server QP receives from this SRQ */
	int sync_access;		/* extra access flags of the sync MR,
					 * e.g. IBV_ACCESS_ON_DEMAND to pin
					 * nothing at all
					 */
	struct ibv_comp_channel *srv_rch; /* the server's receive CQ
					   * reports to it, for a thread
					   * that sleeps until a RECV
					   */
};

/*
 * Two UD QPs on one device, @snd sending to @rcv through @ah (the device's
 * own RoCE v2 GID). The sodp_end ids are NULL.
 */
struct sodp_ud {
	struct sodp_end snd;
	struct sodp_end rcv;
	struct ibv_ah *ah;
};

/* The sodp counters of one MR, as "rdma statistic show mr" reports them. */
struct sodp_mr_stats {
	uint64_t page_faults;
	uint64_t pages_faulted;
	uint64_t page_invalidations;
	uint64_t pages_invalidated;
	uint64_t page_prefetch;
	uint64_t cache_hits;
	uint64_t cache_misses;
	uint64_t cache_recalls;
	uint64_t deferrals;
	uint64_t pages_mirrored;
	uint64_t pages_cached;
};

enum sodp_pin_mode {
	SODP_PIN_ABSENT,	/* no sodp module parameter: stock kernel */
	SODP_PIN_PIN,
	SODP_PIN_AUTO,
	SODP_PIN_ALL,
	SODP_PIN_UNKNOWN,
};

int sodp_dev_open(struct sodp_dev *dev, const char *name);
void sodp_dev_close(struct sodp_dev *dev);

int sodp_dev_probe(const char *name, struct ibv_device_attr_ex *attr,
		   bool *iwarp);

/* rdma_cm building blocks of sodp_pair_connect(), for other topologies. */
int sodp_channel_create(struct rdma_event_channel **ch);
int sodp_cm_next(struct rdma_event_channel *ch, int timeout_ms,
		 struct rdma_cm_event *out);
int sodp_cm_expect(struct rdma_event_channel *ch, int timeout_ms,
		   enum rdma_cm_event_type type, struct rdma_cm_event *out);
void sodp_cm_drain(struct rdma_event_channel *ch, int timeout_ms);
bool sodp_id_on_dev(struct sodp_dev *dev, struct rdma_cm_id *id,
		    const char *what);
int sodp_end_create_qp(struct sodp_dev *dev, struct sodp_end *end,
		       struct ibv_srq *srq);
void sodp_end_destroy(struct sodp_end *end);
void sodp_conn_param(struct sodp_dev *dev, struct rdma_conn_param *cp);

int sodp_pair_connect(struct sodp_dev *dev, struct sodp_pair *pair);
int sodp_pair_connect_opts(struct sodp_dev *dev, struct sodp_pair *pair,
			   const struct sodp_pair_opts *opts);
void sodp_pair_destroy(struct sodp_pair *pair);
int sodp_pair_sync(struct sodp_pair *pair);

struct ibv_mr *sodp_mr_reg(struct sodp_dev *dev, void *addr, size_t len,
			   int access);
int sodp_mr_dereg(struct ibv_mr **mr);

/*
 * In a test: registering [addr, addr + len) with access must fail with
 * errno err. An MR that was registered anyway is deregistered again.
 */
#define EXPECT_REG_REFUSED(dev, addr, len, access, err)			\
	do {								\
		struct ibv_mr *__mr = sodp_mr_reg(dev, addr, len, access); \
		int __err = errno;					\
									\
		EXPECT_EQ(NULL, __mr);					\
		EXPECT_EQ(err, __err);					\
		if (__mr)						\
			ibv_dereg_mr(__mr);				\
	} while (0)

int sodp_post_recv(struct sodp_end *end, uint64_t wr_id, void *addr,
		   uint32_t len, uint32_t lkey);
int sodp_post_send(struct sodp_end *end, uint64_t wr_id, const void *addr,
		   uint32_t len, uint32_t lkey);
int sodp_post_rdma(struct sodp_end *end, enum ibv_wr_opcode opcode,
		   uint64_t wr_id, void *addr, uint32_t len, uint32_t lkey,
		   uint64_t raddr, uint32_t rkey, __be32 imm);
int sodp_post_atomic(struct sodp_end *end, enum ibv_wr_opcode opcode,
		     uint64_t wr_id, uint64_t *result, uint32_t lkey,
		     uint64_t raddr, uint32_t rkey, uint64_t compare_add,
		     uint64_t swap);
int sodp_post_srq_recv(struct ibv_srq *srq, uint64_t wr_id, void *addr,
		       uint32_t len, uint32_t lkey);
int sodp_poll_one(struct ibv_cq *cq, struct ibv_wc *wc, int timeout_ms);
int sodp_inject_read_request(struct sodp_pair *pair, uint32_t psn,
			     uint64_t va, uint32_t rkey, uint32_t len);
int sodp_inject_flush_request(struct sodp_pair *pair, uint32_t psn,
			      uint32_t feth, uint64_t va, uint32_t rkey,
			      uint32_t len);

int sodp_ud_create(struct sodp_dev *dev, struct sodp_ud *ud);
void sodp_ud_destroy(struct sodp_ud *ud);
int sodp_ud_post_send(struct sodp_ud *ud, uint64_t wr_id, const void *addr,
		      uint32_t len, uint32_t lkey);

int sodp_run(const char *fmt, ...);
int sodp_read_line(const char *path, char *buf, size_t len);
int sodp_write_line(const char *path, const char *val);
int sodp_debugfs_get(const char *name, int64_t *val);
int sodp_mr_stats_get(const char *dev, uint32_t lkey,
		      struct sodp_mr_stats *st);
int sodp_dev_mr_stats_sum(const char *dev, struct sodp_mr_stats *sum,
			  unsigned int *nmr);
int sodp_hw_counter_get(const char *dev, const char *name, uint64_t *val);
int sodp_link_stat_get(const char *dev, const char *name, uint64_t *val);

void *sodp_map_anon(size_t len);
void sodp_unmap(void *addr, size_t len);

uint64_t sodp_seed(const char *name);
uint8_t sodp_pattern_byte(uint64_t seed, size_t pos);
void sodp_pattern_fill(void *buf, size_t len, uint64_t seed, size_t pos);
ssize_t sodp_pattern_check(const void *buf, size_t len, uint64_t seed,
			   size_t pos);
ssize_t sodp_byte_check(const void *buf, size_t len, uint8_t val);

enum sodp_pin_mode sodp_pin_mode(void);
int sodp_pin_mode_write(const char *mode);
const char *sodp_pin_mode_str(enum sodp_pin_mode mode);
long sodp_page_size(void);

/* mm churn for the stress tools: a thread runs until *stop is set. */
struct sodp_churn {
	atomic_int *stop;
	atomic_long *count;	/* one per step done */
};

void *sodp_churn_fork(void *churn);
long sodp_move_pages_to(void **pages, size_t n, int *nodes, int *status,
			int node);

/*
 * One stream of RDMA WRITE + READ-back pairs on its own QP, run by a
 * thread (sodp_stream_main()): every iteration writes a new pattern from
 * @src into @tgt and reads it back into @dst, and checks both the READ
 * result and the CPU's view of @tgt. All three buffers are in @mr, so
 * streams over one MR share its umem (lock, mirror table and cache) while
 * the mm moves its pages. The caller fills in everything up to @seed and
 * owns @thread and @running.
 */
struct sodp_stream {
	struct sodp_pair *pair;
	int timeout_ms;
	struct ibv_mr *mr;
	uint8_t *tgt;
	uint8_t *src;
	uint8_t *dst;
	size_t len;		/* bytes per buffer */
	uint64_t seed;
	pthread_t thread;
	bool running;
	int stop;		/* __atomic */
	uint64_t iters;		/* __atomic */
	int err;
	char why[256];		/* what failed, once @err is set */
};

int sodp_stream_step(struct sodp_stream *s, uint64_t i);
void *sodp_stream_main(void *stream);
uint64_t sodp_stream_iters(struct sodp_stream *s);

#endif /* SODP_LIB_H */
