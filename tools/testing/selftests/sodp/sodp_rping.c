// SPDX-License-Identifier: GPL-2.0
/*
 * rping-style traffic over rdma_cm into ODP memory regions.
 *
 * A server process and a client process (forked from the test), each with
 * its own device context, PD, event channels and address space, connect
 * through librdmacm on the device's IPv4 address (the netdev's address,
 * what guest-setup exports as SODP_RXE_ADDR / SODP_SIW_ADDR, or SODP_ADDR)
 * and run this exchange once per iteration i, every message being a SEND
 * of struct rping_msg:
 *
 *   client                                server
 *   fresh pattern i in its source
 *   SOURCE(addr, rkey, len, i)  ------->
 *                                         RDMA READ source -> its buffer,
 *                                         checks pattern i byte for byte
 *                               <-------  READ_DONE(i)
 *   SINK(addr, rkey, len, i)    ------->
 *                                         RDMA WRITE its buffer -> sink
 *                               <-------  WRITE_DONE(i)
 *   checks pattern i in the sink
 *   byte for byte, and every byte
 *   around it
 *
 * WRITE_DONE follows the WRITE on the same RC connection, so it is
 * delivered after the WRITE's data is placed, also on iWARP, where a
 * WRITE completes at the requester once TCP took it.
 *
 * Every buffer, the message buffers included, is in an ODP MR
 * (IBV_ACCESS_ON_DEMAND), and the MRs cover the buffers exactly, at an
 * offset into their pages as malloc() would hand them out. The variants:
 * - cold: no buffer was touched before its first transfer (the source is a
 *   memfd filled with pwrite(), so its pages are not in the client's page
 *   tables; the server's buffer and the sink are fresh anonymous memory),
 *   and before every further iteration MADV_DONTNEED drops them again, so
 *   every iteration faults every page on both sides;
 * - warm: the CPU wrote every buffer before registration and writes the
 *   next pattern (source) or a fill (sink, server buffer) before each
 *   iteration, into mirrored pages;
 * - large: cold with 8 MiB per transfer; on siw every iteration defers
 *   receives into both the server's buffer and the sink;
 * - read_only_sink: warm; in iteration 1 the client makes its mirrored
 *   sink PROT_READ before advertising it. The server's WRITE is refused:
 *   rxe completes it with IBV_WC_REM_ACCESS_ERR; siw's client raises
 *   IBV_EVENT_QP_ACCESS_ERR and terminates the connection (the WRITE
 *   completes at the server once TCP took it, or as flushed or failed if
 *   the connection dropped first). Either way both QPs go to error (their
 *   RECVs are flushed) and the sink keeps its fill. Both processes carry
 *   on: they reconnect (the server keeps listening, like rping -P) and
 *   iteration 2 writes the sink again.
 *
 * At the end each side reads its MRs' sodp counters ("rdma statistic show
 * mr"): every MR faulted; in the cold variants every data MR faulted once
 * per iteration and every page once per iteration, was invalidated by
 * each MADV_DONTNEED, and on siw deferred a receive once per iteration.
 *
 * Environment: SODP_DEVICE (required), SODP_ADDR, SODP_TIMEOUT_MS. Run as
 * root (the rdma tool shows MR keys only to CAP_NET_ADMIN).
 */
#include "sodp_test.h"
#include <arpa/inet.h>
#include <endian.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>

#define WRID_SEND	0x53454e44ull
#define WRID_RDMA	0x52444d41ull
#define WRID_RECV	0x52454300ull	/* + the receive slot */

#define RPING_MAGIC	0x72706e67u	/* "rpng" */
#define RPING_SLOTS	2		/* RECVs posted on each side */
#define RPING_SLOT_LEN	512		/* bytes per receive slot */
#define RPING_TMO_MULT	12		/* waits: SODP_TIMEOUT_MS times this */
#define RPING_PORT_MS	120000		/* for the server to listen */
#define RPING_CHUNK	(1024u * 1024)	/* bytes per pwrite() */
#define CASE_TIMEOUT	600		/* seconds per case, TCG guest */

#define SENT_SRC	0xa5	/* warm source around the data */
#define SENT_SRV	0x5a	/* warm server buffer before a READ */
#define SENT_SINK	0xc3	/* warm sink before a WRITE */

#define ODP_NEEDED	(IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV | \
			 IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ)

enum rping_type {
	RPING_SOURCE = 1,	/* client: read this */
	RPING_READ_DONE,	/* server: read it */
	RPING_SINK,		/* client: write into this */
	RPING_WRITE_DONE,	/* server: written */
};

/* A message as it is sent: every field big endian. */
struct rping_msg {
	uint64_t addr;
	uint32_t rkey;
	uint32_t len;
	uint32_t seq;		/* the iteration */
	uint32_t type;		/* enum rping_type */
	uint32_t magic;		/* RPING_MAGIC */
	uint32_t pad;
};

/* What both processes run: a copy each, made by fork(). */
struct rping_plan {
	char dev[IBV_SYSFS_NAME_MAX];
	size_t size;		/* bytes per transfer */
	size_t off;		/* of every buffer in its mapping */
	unsigned int iters;
	bool cold;
	int refused;		/* the iteration with a read-only sink, or -1 */
	uint64_t seed;
};

/* A mapping and the ODP MR over [data, data + size) of it. */
struct rping_buf {
	uint8_t *map;
	size_t map_len;
	int fd;			/* memfd behind @map, or -1 */
	uint8_t *data;
	size_t size;
	struct ibv_mr *mr;
};

/* One process's end of the exchange. */
struct rping_side {
	const struct rping_plan *plan;
	const char *role;
	struct sodp_dev dev;
	bool dev_open;
	int tmo;			/* ms, one wait */
	int iter;			/* the current iteration, or -1 */
	struct rdma_event_channel *lch;	/* server: listener events */
	struct rdma_cm_id *listen_id;
	struct rdma_event_channel *ch;	/* events of the connection */
	struct sodp_end end;		/* its cm_id, QP and CQs */
	bool connected;
	struct rping_buf ctl;		/* page 0: sent, page 1: received */
	struct rping_buf src;		/* client: the source */
	struct rping_buf dst;		/* client: the sink; server: its buffer */
	uint8_t *pattern;		/* client, cold: what pwrite() writes */
};

/* Report a failed check of @s; returns -1 for the caller to return. */
static int rping_fail(struct rping_side *s, const char *fmt, ...)
{
	va_list ap;

	if (s->iter >= 0)
		fprintf(stderr, "# rping %s, iteration %d: ", s->role, s->iter);
	else
		fprintf(stderr, "# rping %s: ", s->role);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return -1;
}

/* The state of @s's QP, for a wait that timed out. */
static const char *rping_qp_state(struct rping_side *s)
{
	static const char * const names[] = {
		[IBV_QPS_RESET] = "RESET", [IBV_QPS_INIT] = "INIT",
		[IBV_QPS_RTR] = "RTR", [IBV_QPS_RTS] = "RTS",
		[IBV_QPS_SQD] = "SQD", [IBV_QPS_SQE] = "SQE",
		[IBV_QPS_ERR] = "ERR",
	};
	struct ibv_qp_init_attr init;
	struct ibv_qp_attr attr;

	if (!s->end.qp ||
	    ibv_query_qp(s->end.qp, &attr, IBV_QP_STATE, &init) ||
	    attr.qp_state >= ARRAY_SIZE(names))
		return "unknown";
	return names[attr.qp_state];
}

static const char *rping_type_str(uint32_t type)
{
	switch (type) {
	case RPING_SOURCE:
		return "SOURCE";
	case RPING_READ_DONE:
		return "READ_DONE";
	case RPING_SINK:
		return "SINK";
	case RPING_WRITE_DONE:
		return "WRITE_DONE";
	default:
		return "unknown";
	}
}

/* The seed of iteration @i's pattern: a fresh pattern every iteration. */
static uint64_t rping_seed(const struct rping_plan *p, int i)
{
	return p->seed ^ ((i + 1) * 0x9e3779b97f4a7c15ull);
}

static size_t rping_page(void)
{
	return (size_t)sodp_page_size();
}

/* The pages [data, data + size) spans. */
static size_t rping_npages(const struct rping_buf *b)
{
	size_t pg = rping_page();
	uintptr_t first = (uintptr_t)b->data / pg;
	uintptr_t last = ((uintptr_t)b->data + b->size - 1) / pg;

	return last - first + 1;
}

/*
 * Map @b: @size bytes at @off of a mapping with room after them. @memfd:
 * a MAP_SHARED mapping of a memfd of that length (holes until written);
 * otherwise private anonymous memory, set to @fill by the CPU if @fill
 * >= 0 (warm) or never touched (cold).
 */
static int rping_map(struct rping_side *s, struct rping_buf *b, size_t off,
		     size_t size, bool memfd, int fill)
{
	size_t pg = rping_page();
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

	b->fd = -1;
	b->size = size;
	b->map_len = (off + size + pg) / pg * pg;
	if (memfd) {
		b->fd = memfd_create("sodp_rping", MFD_CLOEXEC);
		if (b->fd < 0 || ftruncate(b->fd, b->map_len))
			return rping_fail(s, "memfd: %s", strerror(errno));
		flags = MAP_SHARED;
	}
	b->map = mmap(NULL, b->map_len, PROT_READ | PROT_WRITE, flags, b->fd,
		      0);
	if (b->map == MAP_FAILED) {
		b->map = NULL;
		return rping_fail(s, "mmap(%zu): %s", b->map_len,
				  strerror(errno));
	}
	b->data = b->map + off;
	if (fill >= 0)
		memset(b->map, fill, b->map_len);
	return 0;
}

static int rping_reg(struct rping_side *s, struct rping_buf *b,
		     const char *what, int access)
{
	b->mr = sodp_mr_reg(&s->dev, b->data, b->size,
			    access | IBV_ACCESS_ON_DEMAND);
	if (!b->mr)
		return rping_fail(s, "ODP registration of the %s (%zu bytes): %s",
				  what, b->size, strerror(errno));
	return 0;
}

static void rping_buf_release(struct rping_buf *b)
{
	sodp_mr_dereg(&b->mr);
	sodp_unmap(b->map, b->map_len);
	b->map = NULL;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

/* Drop the pages of @b: the next access through its MR faults again. */
static int rping_drop(struct rping_side *s, struct rping_buf *b,
		      const char *what)
{
	if (madvise(b->map, b->map_len, MADV_DONTNEED))
		return rping_fail(s, "MADV_DONTNEED of the %s: %s", what,
				  strerror(errno));
	return 0;
}

/*
 * @b holds pattern @seed at its data and @fill around it; @seed 0: @fill
 * everywhere. On the first difference, says where.
 */
static int rping_check_buf(struct rping_side *s, const struct rping_buf *b,
			   const char *what, uint64_t seed, uint8_t fill)
{
	size_t off = b->data - b->map, end = off + b->size;
	ssize_t bad;

	bad = sodp_byte_check(b->map, off, fill);
	if (bad < 0) {
		bad = sodp_byte_check(b->map + end, b->map_len - end, fill);
		if (bad >= 0)
			bad += end;
	}
	if (bad >= 0)
		return rping_fail(s, "%s: mapping byte %zd (outside the MR) is 0x%02x, not 0x%02x",
				  what, bad, b->map[bad], fill);

	if (seed)
		bad = sodp_pattern_check(b->data, b->size, seed, 0);
	else
		bad = sodp_byte_check(b->data, b->size, fill);
	if (bad >= 0)
		return rping_fail(s, "%s: byte %zd of %zu is 0x%02x, expected 0x%02x",
				  what, bad, b->size, b->data[bad],
				  seed ? sodp_pattern_byte(seed, bad) : fill);
	return 0;
}

/* Wait for the next completion on @cq and check it by value. */
static int rping_wait(struct rping_side *s, struct ibv_cq *cq,
		      const char *what, uint64_t wr_id, int opcode,
		      uint32_t len)
{
	struct ibv_wc wc;

	if (sodp_poll_one(cq, &wc, s->tmo))
		return rping_fail(s, "%s: no completion, QP in %s", what,
				  rping_qp_state(s));
	if (wc.status != IBV_WC_SUCCESS)
		return rping_fail(s, "%s: completed with %s", what,
				  ibv_wc_status_str(wc.status));
	if (wc.wr_id != wr_id || (int)wc.opcode != opcode ||
	    wc.byte_len != len)
		return rping_fail(s, "%s: wr_id %#llx opcode %d length %u, expected %#llx %d %u",
				  what, (unsigned long long)wc.wr_id,
				  wc.opcode, wc.byte_len,
				  (unsigned long long)wr_id, opcode, len);
	return 0;
}

static uint8_t *rping_slot(struct rping_side *s, unsigned int k)
{
	return s->ctl.data + rping_page() + k * RPING_SLOT_LEN;
}

static int rping_post_slot(struct rping_side *s, unsigned int k)
{
	return sodp_post_recv(&s->end, WRID_RECV + k, rping_slot(s, k),
			      RPING_SLOT_LEN, s->ctl.mr->lkey);
}

/* Post the SEND of a message advertising @b (may be NULL). */
static int rping_post_msg(struct rping_side *s, enum rping_type type,
			  const struct rping_buf *b)
{
	struct rping_msg *m = (struct rping_msg *)s->ctl.data;

	memset(m, 0, sizeof(*m));
	m->magic = htobe32(RPING_MAGIC);
	m->type = htobe32(type);
	m->seq = htobe32(s->iter);
	if (b) {
		m->addr = htobe64((uintptr_t)b->data);
		m->rkey = htobe32(b->mr->rkey);
		m->len = htobe32(b->size);
	}
	if (sodp_post_send(&s->end, WRID_SEND, m, sizeof(*m),
			   s->ctl.mr->lkey))
		return rping_fail(s, "posting %s failed",
				  rping_type_str(type));
	return 0;
}

/* SEND a message advertising @b (may be NULL) and wait for it. */
static int rping_send(struct rping_side *s, enum rping_type type,
		      const struct rping_buf *b)
{
	if (rping_post_msg(s, type, b))
		return -1;
	return rping_wait(s, s->end.scq, rping_type_str(type), WRID_SEND,
			  IBV_WC_SEND, sizeof(struct rping_msg));
}

/*
 * Receive the next message, which must be @type of this iteration, into
 * @out (host order); its slot is posted again before anything else.
 */
static int rping_recv(struct rping_side *s, enum rping_type type,
		      struct rping_msg *out)
{
	struct rping_msg m;
	struct ibv_wc wc;
	uint64_t k;

	if (sodp_poll_one(s->end.rcq, &wc, s->tmo))
		return rping_fail(s, "no %s, QP in %s", rping_type_str(type),
				  rping_qp_state(s));
	if (wc.status != IBV_WC_SUCCESS)
		return rping_fail(s, "RECV for %s completed with %s",
				  rping_type_str(type),
				  ibv_wc_status_str(wc.status));
	k = wc.wr_id - WRID_RECV;
	if (k >= RPING_SLOTS || wc.opcode != IBV_WC_RECV ||
	    wc.byte_len != sizeof(m))
		return rping_fail(s, "RECV wr_id %#llx opcode %d length %u",
				  (unsigned long long)wc.wr_id, wc.opcode,
				  wc.byte_len);
	memcpy(&m, rping_slot(s, k), sizeof(m));
	if (rping_post_slot(s, k))
		return rping_fail(s, "posting a RECV failed");

	out->magic = be32toh(m.magic);
	out->type = be32toh(m.type);
	out->seq = be32toh(m.seq);
	out->addr = be64toh(m.addr);
	out->rkey = be32toh(m.rkey);
	out->len = be32toh(m.len);
	if (out->magic != RPING_MAGIC || out->type != type ||
	    out->seq != (uint32_t)s->iter)
		return rping_fail(s, "got magic %#x %s of iteration %u, expected %s",
				  out->magic, rping_type_str(out->type),
				  out->seq, rping_type_str(type));
	if ((type == RPING_SOURCE || type == RPING_SINK) &&
	    (out->len != s->plan->size || !out->addr))
		return rping_fail(s, "%s of %u bytes at %#llx",
				  rping_type_str(type), out->len,
				  (unsigned long long)out->addr);
	return 0;
}

/*
 * After a refused WRITE both QPs are in the error state: each of the
 * RPING_SLOTS posted RECVs completes as flushed.
 */
static int rping_expect_flushed(struct rping_side *s)
{
	struct ibv_wc wc;
	unsigned int k;

	for (k = 0; k < RPING_SLOTS; k++) {
		if (sodp_poll_one(s->end.rcq, &wc, s->tmo))
			return rping_fail(s, "RECV %u of %u was not flushed",
					  k + 1, RPING_SLOTS);
		if (wc.status != IBV_WC_WR_FLUSH_ERR ||
		    wc.wr_id - WRID_RECV >= RPING_SLOTS)
			return rping_fail(s, "RECV wr_id %#llx completed with %s, expected %s",
					  (unsigned long long)wc.wr_id,
					  ibv_wc_status_str(wc.status),
					  ibv_wc_status_str(IBV_WC_WR_FLUSH_ERR));
	}
	return 0;
}

/*
 * siw, the client of the refused iteration: the terminate for the WRITE
 * into memory it cannot write comes with an access error event on its
 * QP (other events are skipped).
 */
static int rping_expect_access_event(struct rping_side *s)
{
	struct pollfd pfd = { .fd = s->dev.ctx->async_fd, .events = POLLIN };
	struct ibv_async_event ev;
	int flags;
	bool mine;

	flags = fcntl(pfd.fd, F_GETFL);
	if (flags < 0 || fcntl(pfd.fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return rping_fail(s, "async fd: %s", strerror(errno));
	for (;;) {
		if (poll(&pfd, 1, s->tmo) != 1)
			return rping_fail(s, "no IBV_EVENT_QP_ACCESS_ERR");
		if (ibv_get_async_event(s->dev.ctx, &ev))
			continue;
		mine = ev.event_type == IBV_EVENT_QP_ACCESS_ERR &&
		       ev.element.qp == s->end.qp;
		fprintf(stderr, "# rping %s: async event %s\n", s->role,
			ibv_event_type_str(ev.event_type));
		ibv_ack_async_event(&ev);
		if (mine)
			return 0;
	}
}

/* Create the QP on s->end.id, post the receive slots. */
static int rping_qp_setup(struct rping_side *s)
{
	unsigned int k;

	if (!sodp_id_on_dev(&s->dev, s->end.id, s->role) ||
	    sodp_end_create_qp(&s->dev, &s->end, NULL))
		return rping_fail(s, "no QP on %s", s->dev.name);
	for (k = 0; k < RPING_SLOTS; k++)
		if (rping_post_slot(s, k))
			return rping_fail(s, "posting a RECV failed");
	return 0;
}

/* The server: listen on the device's address, any port; tell @port_fd. */
static int rping_listen(struct rping_side *s, int port_fd)
{
	struct sockaddr_in addr = s->dev.addr;
	uint16_t port;

	if (sodp_channel_create(&s->lch))
		return rping_fail(s, "no event channel");
	if (rdma_create_id(s->lch, &s->listen_id, NULL, RDMA_PS_TCP) ||
	    rdma_bind_addr(s->listen_id, (struct sockaddr *)&addr) ||
	    rdma_listen(s->listen_id, 1))
		return rping_fail(s, "listening on %s: %s",
				  inet_ntoa(addr.sin_addr), strerror(errno));
	if (!sodp_id_on_dev(&s->dev, s->listen_id, "listener"))
		return -1;
	port = ntohs(rdma_get_src_port(s->listen_id));
	if (write(port_fd, &port, sizeof(port)) != sizeof(port))
		return rping_fail(s, "telling the port: %s", strerror(errno));
	return 0;
}

/* The server: take the next connection request and accept it. */
static int rping_accept(struct rping_side *s)
{
	struct rdma_conn_param cp;
	struct rdma_cm_event ev;

	if (sodp_cm_expect(s->lch, s->tmo, RDMA_CM_EVENT_CONNECT_REQUEST,
			   &ev))
		return rping_fail(s, "no connection request");
	s->end.id = ev.id;
	/* Its events on a channel of its own, apart from the listener's. */
	if (sodp_channel_create(&s->ch) || rdma_migrate_id(s->end.id, s->ch))
		return rping_fail(s, "moving the cm_id: %s", strerror(errno));
	if (rping_qp_setup(s))
		return -1;
	sodp_conn_param(&s->dev, &cp);
	if (rdma_accept(s->end.id, &cp))
		return rping_fail(s, "rdma_accept: %s", strerror(errno));
	if (sodp_cm_expect(s->ch, s->tmo, RDMA_CM_EVENT_ESTABLISHED, NULL))
		return rping_fail(s, "the connection was not established");
	s->connected = true;
	return 0;
}

/* The client: connect to the server's @port on the device's address. */
static int rping_connect(struct rping_side *s, uint16_t port)
{
	struct sockaddr_in src = s->dev.addr, dst = s->dev.addr;
	struct rdma_conn_param cp;

	dst.sin_port = htons(port);
	if (sodp_channel_create(&s->ch) ||
	    rdma_create_id(s->ch, &s->end.id, NULL, RDMA_PS_TCP))
		return rping_fail(s, "no cm_id: %s", strerror(errno));
	if (rdma_resolve_addr(s->end.id, (struct sockaddr *)&src,
			      (struct sockaddr *)&dst, s->tmo) ||
	    sodp_cm_expect(s->ch, s->tmo, RDMA_CM_EVENT_ADDR_RESOLVED, NULL))
		return rping_fail(s, "resolving %s", inet_ntoa(dst.sin_addr));
	if (rdma_resolve_route(s->end.id, s->tmo) ||
	    sodp_cm_expect(s->ch, s->tmo, RDMA_CM_EVENT_ROUTE_RESOLVED,
			   NULL))
		return rping_fail(s, "no route to %s", inet_ntoa(dst.sin_addr));
	if (rping_qp_setup(s))
		return -1;
	sodp_conn_param(&s->dev, &cp);
	if (rdma_connect(s->end.id, &cp))
		return rping_fail(s, "rdma_connect: %s", strerror(errno));
	if (sodp_cm_expect(s->ch, s->tmo, RDMA_CM_EVENT_ESTABLISHED, NULL))
		return rping_fail(s, "the connection was not established");
	s->connected = true;
	return 0;
}

/*
 * Disconnect and destroy the connection. Both sides call rdma_disconnect()
 * and wait for DISCONNECTED: for IB CM the second call is what answers the
 * first one's DREQ. After a terminate (iWARP) the call may fail; the event
 * is queued already.
 */
static void rping_disconnect(struct rping_side *s)
{
	if (s->connected) {
		rdma_disconnect(s->end.id);
		sodp_cm_drain(s->ch, s->dev.timeout_ms / 4);
	}
	s->connected = false;
	sodp_end_destroy(&s->end);
	if (s->ch)
		rdma_destroy_event_channel(s->ch);
	s->ch = NULL;
}

/*
 * The server at the end of a good run, like rping's: the client
 * disconnects once it has checked the last sink; answer and destroy.
 */
static int rping_disconnected(struct rping_side *s)
{
	if (sodp_cm_expect(s->ch, s->tmo, RDMA_CM_EVENT_DISCONNECTED, NULL))
		return rping_fail(s, "the client did not disconnect");
	rdma_disconnect(s->end.id);
	s->connected = false;
	rping_disconnect(s);
	return 0;
}

static void rping_release(struct rping_side *s)
{
	rping_disconnect(s);
	if (s->listen_id)
		rdma_destroy_id(s->listen_id);
	s->listen_id = NULL;
	if (s->lch)
		rdma_destroy_event_channel(s->lch);
	s->lch = NULL;
	rping_buf_release(&s->ctl);
	rping_buf_release(&s->src);
	rping_buf_release(&s->dst);
	free(s->pattern);
	s->pattern = NULL;
	if (s->dev_open)
		sodp_dev_close(&s->dev);
	s->dev_open = false;
}

static int rping_open(struct rping_side *s, const struct rping_plan *p,
		      const char *role)
{
	memset(s, 0, sizeof(*s));
	s->plan = p;
	s->role = role;
	s->iter = -1;
	s->ctl.fd = -1;
	s->src.fd = -1;
	s->dst.fd = -1;
	if (sodp_dev_open(&s->dev, p->dev))
		return rping_fail(s, "cannot open %s", p->dev);
	s->dev_open = true;
	s->tmo = s->dev.timeout_ms * RPING_TMO_MULT;
	/* Two cold pages: the message sent, then the receive slots. */
	if (rping_map(s, &s->ctl, 0, 2 * rping_page(), false, -1))
		return -1;
	return rping_reg(s, &s->ctl, "message buffer", IBV_ACCESS_LOCAL_WRITE);
}

/*
 * The sodp counters of @b's MR, see the top of the file. @rx: data
 * arrives in @b over the wire (siw places it in softirq).
 */
static int rping_check_stats(struct rping_side *s, const struct rping_buf *b,
			     const char *what, bool data, bool rx)
{
	const struct rping_plan *p = s->plan;
	uint64_t pages = rping_npages(b);
	struct sodp_mr_stats st;

	if (sodp_mr_stats_get(s->dev.name, b->mr->lkey, &st))
		return rping_fail(s, "no sodp counters for the %s MR", what);
	fprintf(stderr, "# rping %s: %s MR, %llu pages: %llu faults, %llu pages faulted,",
		s->role, what, (unsigned long long)pages,
		(unsigned long long)st.page_faults,
		(unsigned long long)st.pages_faulted);
	fprintf(stderr, " %llu invalidations, %llu deferrals\n",
		(unsigned long long)st.page_invalidations,
		(unsigned long long)st.deferrals);
	if (!st.page_faults || !st.pages_faulted)
		return rping_fail(s, "the %s MR never faulted", what);
	if (!data || !p->cold)
		return 0;
	if (st.page_faults < p->iters || st.pages_faulted < p->iters * pages)
		return rping_fail(s, "cold %s MR: %llu faults, %llu pages; expected %u, %llu",
				  what, (unsigned long long)st.page_faults,
				  (unsigned long long)st.pages_faulted,
				  p->iters,
				  (unsigned long long)(p->iters * pages));
	if (st.page_invalidations < p->iters - 1)
		return rping_fail(s, "the %s MR saw %llu invalidations for %u MADV_DONTNEEDs",
				  what,
				  (unsigned long long)st.page_invalidations,
				  p->iters - 1);
	if (s->dev.iwarp && rx && st.deferrals < p->iters)
		return rping_fail(s, "the cold %s MR deferred %llu receives in %u iterations",
				  what, (unsigned long long)st.deferrals,
				  p->iters);
	return 0;
}

/*
 * The server's side of the refused iteration: its WRITE into the
 * read-only sink fails (see the top of the file), its RECVs are flushed.
 */
static int rping_serve_refused(struct rping_side *s)
{
	struct ibv_wc wc;

	if (sodp_poll_one(s->end.scq, &wc, s->tmo))
		return rping_fail(s, "no WRITE completion, QP in %s",
				  rping_qp_state(s));
	fprintf(stderr, "# rping server: WRITE into the read-only sink: %s\n",
		ibv_wc_status_str(wc.status));
	if (wc.wr_id != WRID_RDMA)
		return rping_fail(s, "WRITE completion wr_id %#llx",
				  (unsigned long long)wc.wr_id);
	if (!s->dev.iwarp && wc.status != IBV_WC_REM_ACCESS_ERR)
		return rping_fail(s, "WRITE into the read-only sink: %s, expected %s",
				  ibv_wc_status_str(wc.status),
				  ibv_wc_status_str(IBV_WC_REM_ACCESS_ERR));
	/*
	 * siw: sent before the terminate came (SUCCESS), flushed by it, or
	 * failed in the socket it closed while FPDUs were still going out.
	 */
	if (s->dev.iwarp && wc.status != IBV_WC_SUCCESS &&
	    wc.status != IBV_WC_WR_FLUSH_ERR &&
	    wc.status != IBV_WC_LOC_QP_OP_ERR)
		return rping_fail(s, "WRITE into the read-only sink: %s",
				  ibv_wc_status_str(wc.status));
	return rping_expect_flushed(s);
}

/* The server's part of iteration s->iter. */
static int rping_serve_one(struct rping_side *s)
{
	const struct rping_plan *p = s->plan;
	uint64_t seed = rping_seed(p, s->iter);
	struct rping_msg m;

	if (rping_recv(s, RPING_SOURCE, &m))
		return -1;
	if (p->cold && s->iter && rping_drop(s, &s->dst, "buffer"))
		return -1;
	if (sodp_post_rdma(&s->end, IBV_WR_RDMA_READ, WRID_RDMA, s->dst.data,
			   p->size, s->dst.mr->lkey, m.addr, m.rkey, 0) ||
	    rping_wait(s, s->end.scq, "READ", WRID_RDMA, IBV_WC_RDMA_READ,
		       p->size))
		return rping_fail(s, "READ of the source failed");
	if (rping_check_buf(s, &s->dst, "buffer", seed,
			    p->cold ? 0 : SENT_SRV))
		return -1;
	if (rping_send(s, RPING_READ_DONE, NULL) ||
	    rping_recv(s, RPING_SINK, &m))
		return -1;
	if (sodp_post_rdma(&s->end, IBV_WR_RDMA_WRITE, WRID_RDMA, s->dst.data,
			   p->size, s->dst.mr->lkey, m.addr, m.rkey, 0))
		return rping_fail(s, "posting the WRITE failed");
	if (s->iter == p->refused)
		return rping_serve_refused(s);
	if (rping_wait(s, s->end.scq, "WRITE", WRID_RDMA, IBV_WC_RDMA_WRITE,
		       p->size) ||
	    rping_send(s, RPING_WRITE_DONE, NULL))
		return rping_fail(s, "WRITE into the sink failed");
	if (!p->cold)
		memset(s->dst.map, SENT_SRV, s->dst.map_len);
	return 0;
}

static int rping_server_run(struct rping_side *s, int port_fd)
{
	const struct rping_plan *p = s->plan;

	/* The READ target is also the WRITE source. */
	if (rping_map(s, &s->dst, p->off, p->size, false,
		      p->cold ? -1 : SENT_SRV) ||
	    rping_reg(s, &s->dst, "buffer", IBV_ACCESS_LOCAL_WRITE) ||
	    rping_listen(s, port_fd) || rping_accept(s))
		return -1;
	for (s->iter = 0; s->iter < (int)p->iters; s->iter++) {
		if (rping_serve_one(s))
			return -1;
		if (s->iter != p->refused)
			continue;
		rping_disconnect(s);
		if (rping_accept(s))
			return -1;
	}
	s->iter = -1;
	if (rping_disconnected(s))
		return -1;
	if (rping_check_stats(s, &s->ctl, "message buffer", false, true) ||
	    rping_check_stats(s, &s->dst, "buffer", true, true))
		return -1;
	return 0;
}

/* The server process: 0 if every check passed. */
static int rping_server(const struct rping_plan *p, int port_fd)
{
	struct rping_side s;
	int ret;

	ret = rping_open(&s, p, "server");
	if (!ret)
		ret = rping_server_run(&s, port_fd);
	close(port_fd);
	rping_release(&s);
	return ret;
}

/* The client: a fresh pattern in the source for iteration s->iter. */
static int rping_fill_source(struct rping_side *s)
{
	const struct rping_plan *p = s->plan;
	uint64_t seed = rping_seed(p, s->iter);
	size_t done, len;

	if (!p->cold) {
		sodp_pattern_fill(s->src.data, p->size, seed, 0);
		return 0;
	}
	/*
	 * Into the page cache, not through the mapping; then unmap it.
	 * In chunks: one long write on a slow guest looks like a lockup.
	 */
	sodp_pattern_fill(s->pattern, p->size, seed, 0);
	for (done = 0; done < p->size; done += len) {
		len = p->size - done < RPING_CHUNK ? p->size - done :
						     RPING_CHUNK;
		if (pwrite(s->src.fd, s->pattern + done, len,
			   p->off + done) != (ssize_t)len)
			return rping_fail(s, "pwrite: %s", strerror(errno));
	}
	return s->iter ? rping_drop(s, &s->src, "source") : 0;
}

/*
 * The client's side of the refused iteration, after posting SINK: the QP
 * goes to error, the sink keeps what it held, and it is made writable
 * again. SINK itself was delivered (the server wrote), but on rxe its ACK
 * may be processed after the QP went to error: then it is flushed.
 */
static int rping_ping_refused(struct rping_side *s)
{
	const struct rping_plan *p = s->plan;
	struct ibv_wc wc;

	if (sodp_poll_one(s->end.scq, &wc, s->tmo))
		return rping_fail(s, "SINK: no completion, QP in %s",
				  rping_qp_state(s));
	if (wc.wr_id != WRID_SEND || (wc.status != IBV_WC_SUCCESS &&
				      wc.status != IBV_WC_WR_FLUSH_ERR))
		return rping_fail(s, "SINK: wr_id %#llx completed with %s",
				  (unsigned long long)wc.wr_id,
				  ibv_wc_status_str(wc.status));
	if (rping_expect_flushed(s) ||
	    (s->dev.iwarp && rping_expect_access_event(s)) ||
	    rping_check_buf(s, &s->dst, "read-only sink", 0,
			    p->cold ? 0 : SENT_SINK))
		return -1;
	if (mprotect(s->dst.map, s->dst.map_len, PROT_READ | PROT_WRITE))
		return rping_fail(s, "mprotect: %s", strerror(errno));
	return 0;
}

/* The client's part of iteration s->iter. */
static int rping_ping_one(struct rping_side *s)
{
	const struct rping_plan *p = s->plan;
	uint64_t seed = rping_seed(p, s->iter);
	struct rping_msg m;

	if (rping_fill_source(s))
		return -1;
	if (p->cold && s->iter && rping_drop(s, &s->dst, "sink"))
		return -1;
	if (!p->cold)
		memset(s->dst.map, SENT_SINK, s->dst.map_len);
	if (rping_send(s, RPING_SOURCE, &s->src) ||
	    rping_recv(s, RPING_READ_DONE, &m))
		return -1;
	if (s->iter == p->refused) {
		if (mprotect(s->dst.map, s->dst.map_len, PROT_READ))
			return rping_fail(s, "mprotect: %s", strerror(errno));
		if (rping_post_msg(s, RPING_SINK, &s->dst))
			return -1;
		return rping_ping_refused(s);
	}
	if (rping_send(s, RPING_SINK, &s->dst) ||
	    rping_recv(s, RPING_WRITE_DONE, &m) ||
	    rping_check_buf(s, &s->dst, "sink", seed,
			    p->cold ? 0 : SENT_SINK) ||
	    rping_check_buf(s, &s->src, "source", seed,
			    p->cold ? 0 : SENT_SRC))
		return -1;
	return 0;
}

/* The server's port from @port_fd, waiting for it to listen. */
static int rping_read_port(struct rping_side *s, int port_fd, uint16_t *port)
{
	struct pollfd pfd = { .fd = port_fd, .events = POLLIN };

	if (poll(&pfd, 1, RPING_PORT_MS) != 1 ||
	    read(port_fd, port, sizeof(*port)) != sizeof(*port))
		return rping_fail(s, "the server did not listen");
	return 0;
}

static int rping_client_run(struct rping_side *s, int port_fd)
{
	const struct rping_plan *p = s->plan;
	uint16_t port;

	if (p->cold) {
		s->pattern = malloc(p->size);
		if (!s->pattern)
			return rping_fail(s, "out of memory");
	}
	if (rping_map(s, &s->src, p->off, p->size, p->cold,
		      p->cold ? -1 : SENT_SRC) ||
	    rping_map(s, &s->dst, p->off, p->size, false,
		      p->cold ? -1 : SENT_SINK) ||
	    rping_reg(s, &s->src, "source", IBV_ACCESS_REMOTE_READ) ||
	    rping_reg(s, &s->dst, "sink",
		      IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE) ||
	    rping_read_port(s, port_fd, &port) || rping_connect(s, port))
		return -1;
	for (s->iter = 0; s->iter < (int)p->iters; s->iter++) {
		if (rping_ping_one(s))
			return -1;
		if (s->iter != p->refused)
			continue;
		rping_disconnect(s);
		if (rping_connect(s, port))
			return -1;
	}
	s->iter = -1;
	rping_disconnect(s);
	if (rping_check_stats(s, &s->ctl, "message buffer", false, true) ||
	    rping_check_stats(s, &s->src, "source", true, false) ||
	    rping_check_stats(s, &s->dst, "sink", true, true))
		return -1;
	return 0;
}

/* The client (this process): 0 if every check passed. */
static int rping_client(const struct rping_plan *p, int port_fd)
{
	struct rping_side s;
	int ret;

	ret = rping_open(&s, p, "client");
	if (!ret)
		ret = rping_client_run(&s, port_fd);
	rping_release(&s);
	return ret;
}

FIXTURE(rping) {
	pid_t server;
	int port[2];		/* server -> client */
};

FIXTURE_VARIANT(rping) {
	size_t size;
	size_t off;
	unsigned int iters;
	bool cold;
	int refused;
};

/* rping's largest message (64 KiB - 1), unaligned: 17 pages. */
FIXTURE_VARIANT_ADD(rping, cold) {
	.size = 65535,
	.off = 100,
	.iters = 8,
	.cold = true,
	.refused = -1,
};

FIXTURE_VARIANT_ADD(rping, warm) {
	.size = 65535,
	.off = 100,
	.iters = 8,
	.cold = false,
	.refused = -1,
};

/* 8 MiB + 3, unaligned at both ends: 2049 pages. */
FIXTURE_VARIANT_ADD(rping, large) {
	.size = (8u << 20) + 3,
	.off = 4093,
	.iters = 3,
	.cold = true,
	.refused = -1,
};

/* Iteration 1 is refused, iteration 2 runs on a new connection. */
FIXTURE_VARIANT_ADD(rping, read_only_sink) {
	.size = 3 * 4096 + 5,
	.off = 77,
	.iters = 3,
	.cold = false,
	.refused = 1,
};

FIXTURE_SETUP(rping)
{
	const char *name = getenv("SODP_DEVICE");
	struct ibv_device_attr_ex attr;
	bool iwarp;
	uint32_t rc;

	self->server = -1;
	self->port[0] = -1;
	self->port[1] = -1;
	if (!name || !*name)
		SKIP(return, "SODP_DEVICE is not set (run test_sodp.sh)");
	/* No verbs context stays open here: both processes start afresh. */
	ASSERT_EQ(0, sodp_dev_probe(name, &attr, &iwarp));
	rc = attr.odp_caps.per_transport_caps.rc_odp_caps;
	if (!(attr.odp_caps.general_caps & IBV_ODP_SUPPORT) ||
	    (rc & ODP_NEEDED) != ODP_NEEDED)
		SKIP(return, "%s has no ODP for RC SEND, RECV, READ and WRITE",
		     name);
}

FIXTURE_TEARDOWN(rping)
{
	if (self->server > 0) {
		kill(self->server, SIGKILL);
		waitpid(self->server, NULL, 0);
	}
	if (self->port[0] >= 0)
		close(self->port[0]);
	if (self->port[1] >= 0)
		close(self->port[1]);
}

/*
 * The exchange of the variant between a forked server and this process
 * as the client, see the top of the file. Both must pass every check.
 */
TEST_F_TIMEOUT(rping, ping, CASE_TIMEOUT)
{
	struct rping_plan plan = {
		.size = variant->size,
		.off = variant->off,
		.iters = variant->iters,
		.cold = variant->cold,
		.refused = variant->refused,
		.seed = sodp_seed(_metadata->name),
	};
	int ret, status;

	snprintf(plan.dev, sizeof(plan.dev), "%s", getenv("SODP_DEVICE"));
	ASSERT_EQ(0, pipe2(self->port, O_CLOEXEC));
	fflush(stdout);
	fflush(stderr);
	self->server = fork();
	ASSERT_LE(0, self->server);
	if (self->server == 0) {
		close(self->port[0]);
		_exit(rping_server(&plan, self->port[1]) ? 1 : 0);
	}
	close(self->port[1]);
	self->port[1] = -1;

	ret = rping_client(&plan, self->port[0]);
	ASSERT_EQ(self->server, waitpid(self->server, &status, 0));
	self->server = -1;
	ASSERT_EQ(0, ret) TH_LOG("the client failed, see above");
	ASSERT_TRUE(WIFEXITED(status)) TH_LOG("server status %#x", status);
	ASSERT_EQ(0, WEXITSTATUS(status)) TH_LOG("the server failed, see above");
}

TEST_HARNESS_MAIN
