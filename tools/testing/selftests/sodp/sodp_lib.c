// SPDX-License-Identifier: GPL-2.0
/*
 * Shared helpers for the sodp selftests, see sodp_lib.h.
 *
 * The connection is an in-process loopback through librdmacm, which both
 * transports need (iWARP has no other way to connect, RoCE works the same
 * way): a listener bound to the device's IPv4 address, a client that
 * resolves that address, and both ends driven from this single thread. Each
 * side has its own event channel whose fd is non-blocking and waited for with
 * poll(), so a missing event ends in -ETIMEDOUT, never in a hang.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/mempolicy.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sodp_lib.h"

#define SODP_CQ_DEPTH		256
#define SODP_QP_DEPTH		64
#define SODP_RD_ATOM		8
#define SODP_NDEV_SCAN		16
#define SODP_GID_ENTRIES	128
#define SODP_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define SODP_PIN_MODE_PATH	"/sys/module/sodp/parameters/pin_mode"

#define sodp_err(fmt, ...) \
	fprintf(stderr, "# sodp: %s: " fmt "\n", __func__, ##__VA_ARGS__)

static uint64_t sodp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/**
 * sodp_run() - run a shell command line built from a format
 * @fmt: printf format of the command line (at most 1023 bytes)
 *
 * Return: the command's exit status (0: it succeeded), or -1 if there was
 * no shell or the command was killed by a signal.
 */
int sodp_run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/**
 * sodp_read_line() - read a one-line file (sysfs, procfs) without its newline
 * @path: the file
 * @buf: where to put it
 * @len: size of @buf
 *
 * Return: 0, -ENODATA for an empty line, or -errno of open/read.
 */
int sodp_read_line(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf[0] ? 0 : -ENODATA;
}

/**
 * sodp_write_line() - write a value to a sysfs or procfs file
 * @path: the file
 * @val: the value (written as is, in one write)
 *
 * Return: 0 or -errno of open/write (what the kernel's store returned).
 */
int sodp_write_line(const char *path, const char *val)
{
	ssize_t n;
	int fd, err;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

/*
 * The netdev of port 1: sysfs names it for every GID entry of a RoCE port and,
 * since config_non_roce_gid_cache() sets gid_attr.ndev for iWARP, for siw too.
 * Fall back to the ndev_ifindex of the GID table entries.
 */
static int sodp_dev_find_ifname(struct sodp_dev *dev)
{
	struct ibv_gid_entry ent[SODP_GID_ENTRIES];
	char path[256];
	ssize_t n;
	int i;

	for (i = 0; i < SODP_NDEV_SCAN; i++) {
		snprintf(path, sizeof(path),
			 "/sys/class/infiniband/%s/ports/1/gid_attrs/ndevs/%d",
			 dev->name, i);
		if (!sodp_read_line(path, dev->ifname, sizeof(dev->ifname)))
			return 0;
	}

	n = ibv_query_gid_table(dev->ctx, ent, SODP_GID_ENTRIES, 0);
	for (i = 0; i < n; i++) {
		if (ent[i].port_num != 1 || !ent[i].ndev_ifindex)
			continue;
		if (if_indextoname(ent[i].ndev_ifindex, dev->ifname))
			return 0;
	}
	dev->ifname[0] = '\0';
	return -ENODEV;
}

static int sodp_dev_find_addr(struct sodp_dev *dev)
{
	const char *env = getenv("SODP_ADDR");
	struct ifaddrs *ifa, *it;
	int ret = -EADDRNOTAVAIL;

	dev->addr.sin_family = AF_INET;
	dev->addr.sin_port = 0;

	/* Look the netdev up even with an override: device_present logs it. */
	sodp_dev_find_ifname(dev);

	if (env) {
		if (inet_pton(AF_INET, env, &dev->addr.sin_addr) != 1) {
			sodp_err("SODP_ADDR=%s is not an IPv4 address", env);
			return -EINVAL;
		}
		return 0;
	}
	if (!dev->ifname[0]) {
		sodp_err("%s: no netdev found for port 1; set SODP_ADDR",
			 dev->name);
		return -ENODEV;
	}
	if (getifaddrs(&ifa)) {
		ret = -errno;
		sodp_err("getifaddrs: %s", strerror(errno));
		return ret;
	}
	for (it = ifa; it; it = it->ifa_next) {
		if (!it->ifa_addr || it->ifa_addr->sa_family != AF_INET ||
		    strcmp(it->ifa_name, dev->ifname))
			continue;
		memcpy(&dev->addr.sin_addr,
		       &((struct sockaddr_in *)it->ifa_addr)->sin_addr,
		       sizeof(dev->addr.sin_addr));
		ret = 0;
		break;
	}
	freeifaddrs(ifa);
	if (ret)
		sodp_err("%s: netdev %s has no IPv4 address; set SODP_ADDR",
			 dev->name, dev->ifname);
	return ret;
}

/*
 * The ODP capabilities of @ctx. ibv_query_device_ex() fails on providers
 * without the extended query; their kernel driver has no ODP either.
 */
static void sodp_query_odp(struct ibv_context *ctx, struct ibv_odp_caps *odp)
{
	struct ibv_device_attr_ex attr;

	memset(odp, 0, sizeof(*odp));
	if (!ibv_query_device_ex(ctx, NULL, &attr))
		*odp = attr.odp_caps;
}

/**
 * sodp_dev_probe() - query a device without keeping it open
 * @name: the device name
 * @attr: the extended device attributes (odp_caps all 0 if the provider has
 *	  no extended query)
 * @iwarp: set to whether the transport is iWARP
 *
 * Opens a plain verbs context (not librdmacm's) and closes it again, so a
 * process can look at the device and still fork a child that sets up its
 * own librdmacm state and contexts from scratch.
 *
 * Return: 0, -ENODEV if there is no such device, or another negative errno.
 */
int sodp_dev_probe(const char *name, struct ibv_device_attr_ex *attr,
		   bool *iwarp)
{
	struct ibv_context *ctx = NULL;
	struct ibv_device **list;
	int i, n = 0, ret;

	memset(attr, 0, sizeof(*attr));
	list = ibv_get_device_list(&n);
	if (!list) {
		ret = errno ? -errno : -ENODEV;
		sodp_err("ibv_get_device_list: %s", strerror(-ret));
		return ret;
	}
	for (i = 0; i < n; i++) {
		if (strcmp(ibv_get_device_name(list[i]), name))
			continue;
		*iwarp = list[i]->transport_type == IBV_TRANSPORT_IWARP;
		ctx = ibv_open_device(list[i]);
		break;
	}
	if (!ctx) {
		ret = i < n ? (errno ? -errno : -EIO) : -ENODEV;
		sodp_err("device %s: %s", name, strerror(-ret));
		goto out_free_list;
	}
	ret = ibv_query_device_ex(ctx, NULL, attr);
	if (ret) {
		memset(attr, 0, sizeof(*attr));
		ret = ibv_query_device(ctx, &attr->orig_attr);
		if (ret) {
			sodp_err("ibv_query_device: %s", strerror(ret));
			ret = -ret;
		}
	}
	ibv_close_device(ctx);
out_free_list:
	ibv_free_device_list(list);
	return ret;
}

/**
 * sodp_dev_open() - open the device under test
 * @dev: zeroed on entry, filled on success
 * @name: the device name (SODP_DEVICE)
 *
 * Uses librdmacm's own context for the device, so that the PD is usable with
 * the QPs rdma_create_qp() creates on the cm_ids bound to it.
 *
 * Return: 0, -ENODEV if there is no such device, or another negative errno.
 */
int sodp_dev_open(struct sodp_dev *dev, const char *name)
{
	const char *env = getenv("SODP_TIMEOUT_MS");
	int i, n = 0, ret;

	memset(dev, 0, sizeof(*dev));
	snprintf(dev->name, sizeof(dev->name), "%s", name);
	dev->timeout_ms = env ? atoi(env) : 0;
	if (dev->timeout_ms <= 0)
		dev->timeout_ms = SODP_TIMEOUT_MS_DEFAULT;

	errno = 0;
	dev->cm_devs = rdma_get_devices(&n);
	if (!dev->cm_devs) {
		ret = errno ? -errno : -ENODEV;
		sodp_err("rdma_get_devices: %s (is rdma_ucm loaded?)",
			 strerror(-ret));
		return ret;
	}
	for (i = 0; i < n; i++) {
		if (!strcmp(ibv_get_device_name(dev->cm_devs[i]->device),
			    name)) {
			dev->ctx = dev->cm_devs[i];
			break;
		}
	}
	if (!dev->ctx) {
		sodp_err("device %s not found among %d RDMA devices", name, n);
		ret = -ENODEV;
		goto out_free_devs;
	}
	dev->iwarp = dev->ctx->device->transport_type == IBV_TRANSPORT_IWARP;

	ret = ibv_query_device(dev->ctx, &dev->attr);
	if (ret) {
		sodp_err("ibv_query_device: %s", strerror(ret));
		ret = -ret;
		goto out_free_devs;
	}
	sodp_query_odp(dev->ctx, &dev->odp);
	ret = ibv_query_port(dev->ctx, 1, &dev->port_attr);
	if (ret) {
		sodp_err("ibv_query_port: %s", strerror(ret));
		ret = -ret;
		goto out_free_devs;
	}
	ret = sodp_dev_find_addr(dev);
	if (ret)
		goto out_free_devs;

	dev->pd = ibv_alloc_pd(dev->ctx);
	if (!dev->pd) {
		ret = errno ? -errno : -ENOMEM;
		sodp_err("ibv_alloc_pd: %s", strerror(-ret));
		goto out_free_devs;
	}
	return 0;

out_free_devs:
	rdma_free_devices(dev->cm_devs);
	dev->cm_devs = NULL;
	dev->ctx = NULL;
	return ret;
}

/* Undo sodp_dev_open(); a no-op on a zeroed or already closed @dev. */
void sodp_dev_close(struct sodp_dev *dev)
{
	int ret;

	if (dev->pd) {
		ret = ibv_dealloc_pd(dev->pd);
		if (ret)
			sodp_err("ibv_dealloc_pd: %s", strerror(ret));
		dev->pd = NULL;
	}
	if (dev->cm_devs)
		rdma_free_devices(dev->cm_devs);
	dev->cm_devs = NULL;
	dev->ctx = NULL;
}

/* A new event channel whose fd is non-blocking, for sodp_cm_next(). */
int sodp_channel_create(struct rdma_event_channel **ch)
{
	int flags;

	*ch = rdma_create_event_channel();
	if (!*ch) {
		sodp_err("rdma_create_event_channel: %s", strerror(errno));
		return errno ? -errno : -ENOMEM;
	}
	flags = fcntl((*ch)->fd, F_GETFL);
	if (flags < 0 || fcntl((*ch)->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		sodp_err("fcntl(O_NONBLOCK): %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/*
 * Wait for the next event on @ch. The event is acked before returning (only
 * a copy is handed out), so rdma_destroy_id() never waits for it. librdmacm
 * may swallow an event internally and retry the read, which on our
 * non-blocking fd shows up as EAGAIN: go back to poll() then.
 */
int sodp_cm_next(struct rdma_event_channel *ch, int timeout_ms,
		 struct rdma_cm_event *out)
{
	uint64_t deadline = sodp_now_ms() + timeout_ms;
	struct rdma_cm_event *ev;
	struct pollfd pfd = { .fd = ch->fd, .events = POLLIN };
	int64_t left;
	int ret;

	for (;;) {
		left = (int64_t)(deadline - sodp_now_ms());
		if (left < 0)
			left = 0;
		ret = poll(&pfd, 1, (int)left);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (ret == 0)
			return -ETIMEDOUT;
		if (!rdma_get_cm_event(ch, &ev))
			break;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	*out = *ev;
	rdma_ack_cm_event(ev);
	return 0;
}

/*
 * Wait for the next event on @ch and check that it is @type; a copy of it
 * in *@out if @out is set. Return: 0, -ETIMEDOUT, or the event's negative
 * status (-EPROTO without one) if another event came.
 */
int sodp_cm_expect(struct rdma_event_channel *ch, int timeout_ms,
		   enum rdma_cm_event_type type, struct rdma_cm_event *out)
{
	struct rdma_cm_event ev;
	int ret;

	ret = sodp_cm_next(ch, timeout_ms, &ev);
	if (ret) {
		sodp_err("waiting for %s: %s", rdma_event_str(type),
			 strerror(-ret));
		return ret;
	}
	if (ev.event != type) {
		sodp_err("expected %s, got %s (status %d)",
			 rdma_event_str(type), rdma_event_str(ev.event),
			 ev.status);
		return ev.status < 0 ? ev.status : -EPROTO;
	}
	if (out)
		*out = ev;
	return 0;
}

/* Whether @id is bound to @dev's context; says which device it is if not. */
bool sodp_id_on_dev(struct sodp_dev *dev, struct rdma_cm_id *id,
		    const char *what)
{
	const char *name = id->verbs ? ibv_get_device_name(id->verbs->device) :
				       "(none)";

	if (id->verbs == dev->ctx)
		return true;
	sodp_err("%s cm_id is on device %s, not on %s", what, name,
		 dev->name);
	return false;
}

/*
 * An RC QP on @end->id with @dev's PD, its own send and receive CQs (the
 * receive CQ reporting to @rch if set), and receives from @srq if set.
 * sodp_end_destroy() undoes it, also partly.
 */
static int sodp_end_create_qp_ch(struct sodp_dev *dev, struct sodp_end *end,
				 struct ibv_srq *srq,
				 struct ibv_comp_channel *rch)
{
	struct ibv_qp_init_attr init = {
		.qp_type = IBV_QPT_RC,
		.cap = {
			.max_send_wr = SODP_QP_DEPTH,
			.max_recv_wr = SODP_QP_DEPTH,
			.max_send_sge = 1,
			.max_recv_sge = 1,
		},
	};
	int ret;

	end->scq = ibv_create_cq(dev->ctx, SODP_CQ_DEPTH, NULL, NULL, 0);
	end->rcq = ibv_create_cq(dev->ctx, SODP_CQ_DEPTH, NULL, rch, 0);
	if (!end->scq || !end->rcq) {
		ret = errno ? -errno : -ENOMEM;
		sodp_err("ibv_create_cq: %s", strerror(-ret));
		return ret;
	}
	init.send_cq = end->scq;
	init.recv_cq = end->rcq;
	init.srq = srq;
	if (rdma_create_qp(end->id, dev->pd, &init)) {
		ret = errno ? -errno : -EINVAL;
		sodp_err("rdma_create_qp: %s", strerror(-ret));
		return ret;
	}
	end->qp = end->id->qp;
	return 0;
}

/* The same with no completion channel. */
int sodp_end_create_qp(struct sodp_dev *dev, struct sodp_end *end,
		       struct ibv_srq *srq)
{
	return sodp_end_create_qp_ch(dev, end, srq, NULL);
}

/* Connection parameters for rdma_connect() and rdma_accept() on @dev. */
void sodp_conn_param(struct sodp_dev *dev, struct rdma_conn_param *cp)
{
	memset(cp, 0, sizeof(*cp));
	cp->responder_resources = dev->attr.max_qp_rd_atom < SODP_RD_ATOM ?
				  dev->attr.max_qp_rd_atom : SODP_RD_ATOM;
	cp->initiator_depth = dev->attr.max_qp_init_rd_atom < SODP_RD_ATOM ?
			      dev->attr.max_qp_init_rd_atom : SODP_RD_ATOM;
	cp->retry_count = 7;
	cp->rnr_retry_count = 7;
}

/**
 * sodp_pair_connect() - connect an RC QP pair on @dev to itself
 * @dev: an open device
 * @pair: on return it may be partly set up even on failure,
 *	  sodp_pair_destroy() releases whatever was created
 *
 * Same as sodp_pair_connect_opts() with no options.
 *
 * Return: 0 or a negative errno.
 */
int sodp_pair_connect(struct sodp_dev *dev, struct sodp_pair *pair)
{
	return sodp_pair_connect_opts(dev, pair, NULL);
}

/**
 * sodp_pair_connect_opts() - connect an RC QP pair on @dev to itself
 * @dev: an open device
 * @pair: on return it may be partly set up even on failure,
 *	  sodp_pair_destroy() releases whatever was created
 * @opts: NULL, or an SRQ for the server QP, extra access flags for the
 *	  sync MR and a completion channel for the server's receive CQ
 *
 * Sequence: listen on the device address (ephemeral port), resolve address
 * and route from the client, create both QPs on our PD with our CQs,
 * rdma_connect(), accept the CONNECT_REQUEST on the listener, then wait for
 * ESTABLISHED on the client (for IB CM this is where librdmacm sends the RTU)
 * and then on the server.
 *
 * Return: 0 or a negative errno.
 */
int sodp_pair_connect_opts(struct sodp_dev *dev, struct sodp_pair *pair,
			   const struct sodp_pair_opts *opts)
{
	struct sockaddr_in src = dev->addr, dst = dev->addr;
	struct rdma_conn_param cp;
	struct rdma_cm_event ev;
	int tmo = dev->timeout_ms;
	int ret;

	memset(pair, 0, sizeof(*pair));
	pair->dev = dev;
	if (opts) {
		pair->srv_srq = opts->srv_srq;
		pair->srv_rch = opts->srv_rch;
	}

	ret = sodp_channel_create(&pair->lch);
	if (ret)
		return ret;
	ret = sodp_channel_create(&pair->cch);
	if (ret)
		return ret;

	pair->sync_buf = sodp_map_anon(sodp_page_size());
	if (!pair->sync_buf)
		return -ENOMEM;
	pair->sync_mr = sodp_mr_reg(dev, pair->sync_buf, sodp_page_size(),
				    IBV_ACCESS_LOCAL_WRITE |
				    (opts ? opts->sync_access : 0));
	if (!pair->sync_mr) {
		ret = -errno;
		sodp_err("sync MR: %s", strerror(-ret));
		return ret;
	}

	if (rdma_create_id(pair->lch, &pair->listen_id, NULL, RDMA_PS_TCP) ||
	    rdma_bind_addr(pair->listen_id, (struct sockaddr *)&src) ||
	    rdma_listen(pair->listen_id, 4)) {
		ret = -errno;
		sodp_err("listen on %s: %s", inet_ntoa(src.sin_addr),
			 strerror(errno));
		return ret;
	}
	if (!sodp_id_on_dev(dev, pair->listen_id, "listener"))
		return -ENODEV;
	dst.sin_port = rdma_get_src_port(pair->listen_id);

	if (rdma_create_id(pair->cch, &pair->cli.id, NULL, RDMA_PS_TCP)) {
		ret = -errno;
		sodp_err("rdma_create_id: %s", strerror(errno));
		return ret;
	}
	if (rdma_resolve_addr(pair->cli.id, (struct sockaddr *)&src,
			      (struct sockaddr *)&dst, tmo)) {
		ret = -errno;
		sodp_err("rdma_resolve_addr: %s", strerror(errno));
		return ret;
	}
	ret = sodp_cm_expect(pair->cch, tmo, RDMA_CM_EVENT_ADDR_RESOLVED, NULL);
	if (ret)
		return ret;
	if (rdma_resolve_route(pair->cli.id, tmo)) {
		ret = -errno;
		sodp_err("rdma_resolve_route: %s", strerror(errno));
		return ret;
	}
	ret = sodp_cm_expect(pair->cch, tmo, RDMA_CM_EVENT_ROUTE_RESOLVED,
			     NULL);
	if (ret)
		return ret;
	if (!sodp_id_on_dev(dev, pair->cli.id, "client"))
		return -ENODEV;

	ret = sodp_end_create_qp(dev, &pair->cli, NULL);
	if (ret)
		return ret;

	sodp_conn_param(dev, &cp);
	if (rdma_connect(pair->cli.id, &cp)) {
		ret = -errno;
		sodp_err("rdma_connect: %s", strerror(errno));
		return ret;
	}

	ret = sodp_cm_expect(pair->lch, tmo, RDMA_CM_EVENT_CONNECT_REQUEST,
			     &ev);
	if (ret)
		return ret;
	pair->srv.id = ev.id;
	if (!sodp_id_on_dev(dev, pair->srv.id, "server"))
		return -ENODEV;
	ret = sodp_end_create_qp_ch(dev, &pair->srv, pair->srv_srq,
				    pair->srv_rch);
	if (ret)
		return ret;
	sodp_conn_param(dev, &cp);
	if (rdma_accept(pair->srv.id, &cp)) {
		ret = -errno;
		sodp_err("rdma_accept: %s", strerror(errno));
		return ret;
	}

	ret = sodp_cm_expect(pair->cch, tmo, RDMA_CM_EVENT_ESTABLISHED, NULL);
	if (ret)
		return ret;
	ret = sodp_cm_expect(pair->lch, tmo, RDMA_CM_EVENT_ESTABLISHED, NULL);
	if (ret)
		return ret;
	pair->connected = true;
	return 0;
}

/* Ack whatever is queued on @ch until DISCONNECTED or @timeout_ms passes. */
void sodp_cm_drain(struct rdma_event_channel *ch, int timeout_ms)
{
	struct rdma_cm_event ev;

	while (!sodp_cm_next(ch, timeout_ms, &ev))
		if (ev.event == RDMA_CM_EVENT_DISCONNECTED)
			break;
}

/* Destroy the QP, cm_id and CQs of @end; a no-op on a zeroed @end. */
void sodp_end_destroy(struct sodp_end *end)
{
	int ret;

	if (end->id && end->id->qp)
		rdma_destroy_qp(end->id);
	end->qp = NULL;
	if (end->id)
		rdma_destroy_id(end->id);
	end->id = NULL;
	if (end->scq) {
		ret = ibv_destroy_cq(end->scq);
		if (ret)
			sodp_err("ibv_destroy_cq: %s", strerror(ret));
	}
	if (end->rcq) {
		ret = ibv_destroy_cq(end->rcq);
		if (ret)
			sodp_err("ibv_destroy_cq: %s", strerror(ret));
	}
	end->scq = NULL;
	end->rcq = NULL;
}

/*
 * Release everything sodp_pair_connect() created, also after a partial
 * setup and after the QPs went to the error state.
 *
 * The client disconnects first; the server answers its DISCONNECTED with
 * rdma_disconnect() too, which for IB CM is what sends the DREP the client
 * waits for (otherwise the client only gets its event when the DREQ times
 * out). A QP error on iWARP already closed the connection, so either
 * rdma_disconnect() may fail: that is fine, the events are queued already.
 */
void sodp_pair_destroy(struct sodp_pair *pair)
{
	int tmo = pair->dev ? pair->dev->timeout_ms / 4 : 0;

	if (pair->connected) {
		rdma_disconnect(pair->cli.id);
		sodp_cm_drain(pair->lch, tmo);
		rdma_disconnect(pair->srv.id);
		sodp_cm_drain(pair->cch, tmo);
	}
	pair->connected = false;
	sodp_end_destroy(&pair->srv);
	sodp_end_destroy(&pair->cli);
	if (pair->listen_id)
		rdma_destroy_id(pair->listen_id);
	pair->listen_id = NULL;
	if (pair->lch)
		rdma_destroy_event_channel(pair->lch);
	if (pair->cch)
		rdma_destroy_event_channel(pair->cch);
	pair->lch = NULL;
	pair->cch = NULL;
	sodp_mr_dereg(&pair->sync_mr);
	if (pair->sync_buf)
		sodp_unmap(pair->sync_buf, sodp_page_size());
	pair->sync_buf = NULL;
}

/**
 * sodp_pair_sync() - make every earlier client request visible at the server
 * @pair: a connected pair; the server RQ (or SRQ) must hold no other RECV
 *
 * An RDMA WRITE completion at the requester does not mean the data has been
 * placed at the responder: siw completes a WRITE once it is handed to TCP
 * (iWARP WRITEs are not acknowledged). A SEND that is received after the
 * WRITE is, by RC ordering, delivered after the WRITE's data has been placed,
 * so the test waits for that RECV completion before looking at the memory.
 *
 * Return: 0 or a negative errno.
 */
int sodp_pair_sync(struct sodp_pair *pair)
{
	uint64_t *out = pair->sync_buf;
	uint64_t *in = (uint64_t *)((char *)pair->sync_buf + 64);
	uint32_t lkey = pair->sync_mr->lkey;
	int tmo = pair->dev->timeout_ms;
	struct ibv_wc wc;
	int ret;

	*in = 0;
	*out = SODP_WRID_SYNC | ++pair->sync_seq;
	if (pair->srv_srq)
		ret = sodp_post_srq_recv(pair->srv_srq, SODP_WRID_SYNC, in,
					 sizeof(*in), lkey);
	else
		ret = sodp_post_recv(&pair->srv, SODP_WRID_SYNC, in,
				     sizeof(*in), lkey);
	if (ret)
		return ret;
	ret = sodp_post_send(&pair->cli, SODP_WRID_SYNC, out, sizeof(*out),
			     lkey);
	if (ret)
		return ret;

	ret = sodp_poll_one(pair->cli.scq, &wc, tmo);
	if (ret)
		return ret;
	if (wc.status != IBV_WC_SUCCESS || wc.wr_id != SODP_WRID_SYNC) {
		sodp_err("sync SEND: wr_id %#llx status %s",
			 (unsigned long long)wc.wr_id,
			 ibv_wc_status_str(wc.status));
		return -EIO;
	}
	ret = sodp_poll_one(pair->srv.rcq, &wc, tmo);
	if (ret)
		return ret;
	if (wc.status != IBV_WC_SUCCESS || wc.wr_id != SODP_WRID_SYNC ||
	    wc.opcode != IBV_WC_RECV || wc.byte_len != sizeof(*in) ||
	    *in != *out) {
		sodp_err("sync RECV: wr_id %#llx status %s opcode %d len %u",
			 (unsigned long long)wc.wr_id,
			 ibv_wc_status_str(wc.status), wc.opcode, wc.byte_len);
		return -EIO;
	}
	return 0;
}

/*
 * ibv_reg_mr() that leaves errno as the kernel (or the provider) set it and
 * prints nothing: callers check for expected failures.
 */
struct ibv_mr *sodp_mr_reg(struct sodp_dev *dev, void *addr, size_t len,
			   int access)
{
	struct ibv_mr *mr;

	errno = 0;
	mr = ibv_reg_mr(dev->pd, addr, len, access);
	if (!mr && !errno)
		errno = EIO;
	return mr;
}

/* Deregister *@mr if set and clear it. */
int sodp_mr_dereg(struct ibv_mr **mr)
{
	int ret;

	if (!*mr)
		return 0;
	ret = ibv_dereg_mr(*mr);
	*mr = NULL;
	if (ret) {
		sodp_err("ibv_dereg_mr: %s", strerror(ret));
		return -ret;
	}
	return 0;
}

/* Providers return a positive (librxe) or negative (libsiw) errno. */
static int sodp_post_ret(const char *what, int ret)
{
	if (!ret)
		return 0;
	if (ret > 0)
		ret = -ret;
	sodp_err("%s: %s", what, strerror(-ret));
	return ret;
}

int sodp_post_recv(struct sodp_end *end, uint64_t wr_id, void *addr,
		   uint32_t len, uint32_t lkey)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr,
		.length = len,
		.lkey = lkey,
	};
	struct ibv_recv_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
	};
	struct ibv_recv_wr *bad = NULL;

	return sodp_post_ret("ibv_post_recv",
			     ibv_post_recv(end->qp, &wr, &bad));
}

int sodp_post_srq_recv(struct ibv_srq *srq, uint64_t wr_id, void *addr,
		       uint32_t len, uint32_t lkey)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr,
		.length = len,
		.lkey = lkey,
	};
	struct ibv_recv_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
	};
	struct ibv_recv_wr *bad = NULL;

	return sodp_post_ret("ibv_post_srq_recv",
			     ibv_post_srq_recv(srq, &wr, &bad));
}

/* A signaled SEND of [addr, addr + len). */
int sodp_post_send(struct sodp_end *end, uint64_t wr_id, const void *addr,
		   uint32_t len, uint32_t lkey)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr,
		.length = len,
		.lkey = lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
	};
	struct ibv_send_wr *bad = NULL;

	return sodp_post_ret("ibv_post_send(SEND)",
			     ibv_post_send(end->qp, &wr, &bad));
}

/*
 * A signaled RDMA WRITE, WRITE_WITH_IMM (@imm in network order) or READ
 * between local [addr, addr + len) and remote [raddr, raddr + len).
 */
int sodp_post_rdma(struct sodp_end *end, enum ibv_wr_opcode opcode,
		   uint64_t wr_id, void *addr, uint32_t len, uint32_t lkey,
		   uint64_t raddr, uint32_t rkey, __be32 imm)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr,
		.length = len,
		.lkey = lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = opcode,
		.send_flags = IBV_SEND_SIGNALED,
		.imm_data = imm,
		.wr.rdma = {
			.remote_addr = raddr,
			.rkey = rkey,
		},
	};
	struct ibv_send_wr *bad = NULL;

	return sodp_post_ret("ibv_post_send(RDMA)",
			     ibv_post_send(end->qp, &wr, &bad));
}

/* A signaled 8-byte FETCH_ADD or CMP_SWP; the old value lands in *@result. */
int sodp_post_atomic(struct sodp_end *end, enum ibv_wr_opcode opcode,
		     uint64_t wr_id, uint64_t *result, uint32_t lkey,
		     uint64_t raddr, uint32_t rkey, uint64_t compare_add,
		     uint64_t swap)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)result,
		.length = sizeof(*result),
		.lkey = lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = opcode,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.atomic = {
			.remote_addr = raddr,
			.compare_add = compare_add,
			.swap = swap,
			.rkey = rkey,
		},
	};
	struct ibv_send_wr *bad = NULL;

	return sodp_post_ret("ibv_post_send(ATOMIC)",
			     ibv_post_send(end->qp, &wr, &bad));
}

/*
 * A completion did not come: run $SODP_STALL_CMD, if set, to show the
 * state of the transport while the stalled QPs still exist.
 */
static void sodp_stall_dump(void)
{
	const char *cmd = getenv("SODP_STALL_CMD");

	if (!cmd || !*cmd)
		return;
	fflush(stdout);
	fflush(stderr);
	if (system(cmd))
		sodp_err("%s failed", cmd);
}

/*
 * After a stall dump, tell a late completion from a lost one: poll for
 * SODP_STALL_GRACE_MS more (default 30 s, 0 to skip) and say when, or
 * whether, it came. The caller fails either way; this only diagnoses.
 */
static void sodp_stall_late(struct ibv_cq *cq, uint64_t deadline)
{
	const char *env = getenv("SODP_STALL_GRACE_MS");
	const struct timespec pause = { .tv_nsec = 1000 * 1000 };
	long grace = env && *env ? atol(env) : 30000;
	uint64_t end = sodp_now_ms() + grace;
	struct ibv_wc wc;

	if (grace <= 0)
		return;
	while (sodp_now_ms() < end) {
		if (ibv_poll_cq(cq, 1, &wc) == 1) {
			printf("# stall: the completion came %llu ms late (wr_id %#llx, %s)\n",
			       (unsigned long long)(sodp_now_ms() - deadline),
			       (unsigned long long)wc.wr_id,
			       ibv_wc_status_str(wc.status));
			/* Before a harness timeout can kill the case. */
			fflush(stdout);
			return;
		}
		nanosleep(&pause, NULL);
	}
	printf("# stall: still no completion %ld ms after the dump\n", grace);
	fflush(stdout);
}

/**
 * sodp_poll_one() - wait for one completion on @cq
 * @cq: the CQ
 * @wc: the completion, whatever its status
 * @timeout_ms: deadline
 *
 * Busy-polls for a while, then sleeps 50us between polls so that the
 * driver's kthreads and work items get the CPU on a slow (TCG) guest.
 *
 * Return: 0, -ETIMEDOUT, or -EIO if polling itself failed.
 */
int sodp_poll_one(struct ibv_cq *cq, struct ibv_wc *wc, int timeout_ms)
{
	uint64_t now, last = sodp_now_ms(), gap = 0;
	uint64_t deadline = last + timeout_ms;
	const struct timespec pause = { .tv_nsec = 50 * 1000 };
	unsigned int spins = 0;
	int n;

	for (;;) {
		n = ibv_poll_cq(cq, 1, wc);
		if (n < 0) {
			sodp_err("ibv_poll_cq: %d", n);
			return -EIO;
		}
		if (n == 1)
			return 0;
		now = sodp_now_ms();
		if (now - last > gap)
			gap = now - last;
		last = now;
		if (now > deadline) {
			/* A long gap: this process did not run, or not here. */
			sodp_err("no completion within %d ms (at %llu.%03llu s, polls up to %llu ms apart)",
				 timeout_ms, (unsigned long long)now / 1000,
				 (unsigned long long)now % 1000,
				 (unsigned long long)gap);
			sodp_stall_dump();
			sodp_stall_late(cq, deadline);
			return -ETIMEDOUT;
		}
		if (++spins > 100)
			nanosleep(&pause, NULL);
	}
}

/* The value of a sysctl or sysfs file as a long, or -1. */
static long sodp_read_long(const char *path)
{
	char buf[64];

	return sodp_read_line(path, buf, sizeof(buf)) ? -1 : atol(buf);
}

static int sodp_write_long(const char *path, long val)
{
	char buf[32];
	int fd, n, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%ld\n", val);
	if (write(fd, buf, n) != n)
		ret = errno ? -errno : -EIO;
	close(fd);
	return ret;
}

static int sodp_read_mac(const char *ifname, uint8_t mac[6])
{
	char path[128], buf[64];
	int ret;

	snprintf(path, sizeof(path), "/sys/class/net/%s/address", ifname);
	ret = sodp_read_line(path, buf, sizeof(buf));
	if (ret)
		return ret;
	if (sscanf(buf, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1],
		   &mac[2], &mac[3], &mac[4], &mac[5]) != 6)
		return -EINVAL;
	return 0;
}

/* The other end of @ifname if it is one end of a veth pair. */
static int sodp_veth_peer(const char *ifname, char peer[IF_NAMESIZE])
{
	char path[128];
	long link;

	snprintf(path, sizeof(path), "/sys/class/net/%s/iflink", ifname);
	link = sodp_read_long(path);
	if (link <= 0 || (unsigned int)link == if_nametoindex(ifname) ||
	    !if_indextoname(link, peer))
		return -ENODEV;
	return 0;
}

/* CRC-32 (IEEE 802.3, reflected) without the final inversion. */
static uint32_t sodp_crc32(uint32_t crc, const uint8_t *p, size_t len)
{
	int k;

	while (len--) {
		crc ^= *p++;
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
	}
	return crc;
}

static void sodp_put_be(uint8_t *p, uint64_t val, int bytes)
{
	while (bytes--) {
		p[bytes] = val;
		val >>= 8;
	}
}

static uint16_t sodp_ip_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i < len; i += 2)
		sum += (p[i] << 8) | p[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

#define SODP_ROCE_PORT		4791
#define SODP_OP_RC_READ_REQ	0x0c	/* BTH opcode: RC RDMA READ request */
#define SODP_OP_RC_FLUSH	0x1c	/* BTH opcode: RC FLUSH */

/*
 * The RoCE v2 frame of an RC request with a RETH from the device's address
 * to itself, as rxe sends it: Ethernet, IPv4, UDP, BTH, [FETH,] RETH, ICRC.
 * @ext holds the FETH (FLUSH only) and the RETH, @ext_len their size; the
 * ICRC follows them.
 */
struct sodp_read_frame {
	uint8_t eth[14];
	uint8_t ip[20];
	uint8_t udp[8];
	uint8_t bth[12];
	uint8_t ext[4 + 16 + 4];
	size_t ext_len;
};

static void sodp_read_frame_build(struct sodp_read_frame *f,
				  const struct in_addr *addr, uint8_t opcode,
				  uint32_t qpn, uint32_t psn, int64_t feth,
				  uint64_t va, uint32_t rkey, uint32_t len)
{
	uint8_t *reth = f->ext + (feth >= 0 ? 4 : 0);
	size_t iplen;
	/* The ICRC skips an LRH (8 bytes of 1s) and the variant fields. */
	uint8_t masked[8 + sizeof(f->ip) + sizeof(f->udp) + sizeof(f->bth)];
	uint8_t *icrc;
	uint32_t crc;

	f->ext_len = (reth - f->ext) + 16;
	iplen = sizeof(f->ip) + sizeof(f->udp) + sizeof(f->bth) +
		f->ext_len + 4;
	if (feth >= 0)
		sodp_put_be(f->ext, feth, 4);

	f->eth[12] = 0x08;			/* ETH_P_IP */
	f->ip[0] = 0x45;			/* IPv4, 20 byte header */
	sodp_put_be(&f->ip[2], iplen, 2);
	f->ip[6] = 0x40;			/* don't fragment */
	f->ip[8] = 64;				/* TTL */
	f->ip[9] = 17;				/* UDP */
	memcpy(&f->ip[12], addr, 4);
	memcpy(&f->ip[16], addr, 4);
	sodp_put_be(&f->ip[10], sodp_ip_csum(f->ip, sizeof(f->ip)), 2);
	sodp_put_be(&f->udp[0], 0xc000, 2);
	sodp_put_be(&f->udp[2], SODP_ROCE_PORT, 2);
	sodp_put_be(&f->udp[4], iplen - sizeof(f->ip), 2);
	f->bth[0] = opcode;
	sodp_put_be(&f->bth[2], 0xffff, 2);	/* default P_Key */
	sodp_put_be(&f->bth[5], qpn, 3);
	f->bth[8] = 0x80;			/* AckReq */
	sodp_put_be(&f->bth[9], psn, 3);
	sodp_put_be(&reth[0], va, 8);
	sodp_put_be(&reth[8], rkey, 4);
	sodp_put_be(&reth[12], len, 4);

	memset(masked, 0xff, 8);
	memcpy(masked + 8, f->ip, sizeof(masked) - 8);
	masked[8 + 1] = 0xff;			/* IP type of service */
	masked[8 + 8] = 0xff;			/* TTL */
	masked[8 + 10] = 0xff;			/* header checksum */
	masked[8 + 11] = 0xff;
	masked[8 + 26] = 0xff;			/* UDP checksum */
	masked[8 + 27] = 0xff;
	masked[8 + 28 + 4] = 0xff;		/* BTH reserved byte */
	crc = sodp_crc32(0xffffffff, masked, sizeof(masked));
	crc = sodp_crc32(crc, f->ext, f->ext_len);
	/*
	 * rxe's opcode table gives FLUSH no payload offset, so its sender and
	 * receiver both run the ICRC over BTH, FETH and RETH once more, as
	 * the "payload" (unmasked).
	 */
	if (opcode == SODP_OP_RC_FLUSH)
		crc = sodp_crc32(crc, f->bth, sizeof(f->bth) + f->ext_len);
	crc = ~crc;
	icrc = f->ext + f->ext_len;
	icrc[0] = crc;				/* little endian, as rxe */
	icrc[1] = crc >> 8;
	icrc[2] = crc >> 16;
	icrc[3] = crc >> 24;
}

static int sodp_inject_request(struct sodp_pair *pair, uint8_t opcode,
			       uint32_t psn, int64_t feth, uint64_t va,
			       uint32_t rkey, uint32_t len);

/**
 * sodp_inject_read_request() - deliver an RC RDMA READ request from the wire
 * @pair: a connected pair on a RoCE device whose netdev is one end of a
 *	  veth pair (as rxe0 on veth0)
 * @psn: PSN of the request
 * @va: remote address (RETH)
 * @rkey: R_Key (RETH)
 * @len: length (RETH)
 *
 * Builds the RoCE v2 frame the client QP sends for an RDMA READ to the
 * server QP (the same addresses, so the server accepts it as the client's)
 * and sends it from the other end of the veth pair, as a retransmission of
 * the client's request would arrive, whatever the client itself does. The
 * device's netdev must accept a frame from its own address, so accept_local
 * is set and rp_filter cleared there until the device has counted the
 * frame (its rcvd_pkts counter), then restored.
 *
 * Return: 0; -ENODEV if the netdev is not one end of a veth pair or the
 * device has no rcvd_pkts counter; -ETIMEDOUT if the device did not count
 * the frame; another negative errno.
 */
int sodp_inject_read_request(struct sodp_pair *pair, uint32_t psn,
			     uint64_t va, uint32_t rkey, uint32_t len)
{
	return sodp_inject_request(pair, SODP_OP_RC_READ_REQ, psn, -1, va,
				   rkey, len);
}

/**
 * sodp_inject_flush_request() - deliver an RC FLUSH request from the wire
 * @pair: as for sodp_inject_read_request()
 * @psn: PSN of the request
 * @feth: the FETH: selectivity level << 4 | placement type (IBA 9.7.8)
 * @va: remote address (RETH)
 * @rkey: R_Key (RETH)
 * @len: length (RETH)
 *
 * rdma-core 44 has no FLUSH work request; this sends the request the
 * client QP would send, as sodp_inject_read_request() does for a READ.
 *
 * Return: as sodp_inject_read_request().
 */
int sodp_inject_flush_request(struct sodp_pair *pair, uint32_t psn,
			      uint32_t feth, uint64_t va, uint32_t rkey,
			      uint32_t len)
{
	return sodp_inject_request(pair, SODP_OP_RC_FLUSH, psn, feth, va,
				   rkey, len);
}

static int sodp_inject_request(struct sodp_pair *pair, uint8_t opcode,
			       uint32_t psn, int64_t feth, uint64_t va,
			       uint32_t rkey, uint32_t len)
{
	struct sodp_dev *dev = pair->dev;
	char peer[IF_NAMESIZE], rcvd[256];
	char knob[3][128];
	long old[3], val[3] = { 1, 0, 0 }, before;
	struct sodp_read_frame f = {};
	struct sockaddr_ll sll = {};
	uint64_t deadline;
	int fd, i, ret;
	size_t flen;

	if (!dev->ifname[0] || sodp_veth_peer(dev->ifname, peer))
		return -ENODEV;
	snprintf(rcvd, sizeof(rcvd),
		 "/sys/class/infiniband/%s/ports/1/hw_counters/rcvd_pkts",
		 dev->name);
	before = sodp_read_long(rcvd);
	if (before < 0)
		return -ENODEV;
	ret = sodp_read_mac(dev->ifname, &f.eth[0]);
	if (!ret)
		ret = sodp_read_mac(peer, &f.eth[6]);
	if (ret)
		return ret;
	sodp_read_frame_build(&f, &dev->addr.sin_addr, opcode,
			      pair->srv.qp->qp_num, psn, feth, va, rkey, len);
	flen = offsetof(struct sodp_read_frame, ext) + f.ext_len + 4;

	snprintf(knob[0], sizeof(knob[0]),
		 "/proc/sys/net/ipv4/conf/%s/accept_local", dev->ifname);
	snprintf(knob[1], sizeof(knob[1]),
		 "/proc/sys/net/ipv4/conf/%s/rp_filter", dev->ifname);
	snprintf(knob[2], sizeof(knob[2]),
		 "/proc/sys/net/ipv4/conf/all/rp_filter");
	for (i = 0; i < 3; i++) {
		old[i] = sodp_read_long(knob[i]);
		if (old[i] != val[i])
			sodp_write_long(knob[i], val[i]);
	}

	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		sodp_err("socket(AF_PACKET): %s", strerror(errno));
		goto out_restore;
	}
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = if_nametoindex(peer);
	sll.sll_halen = 6;
	memcpy(sll.sll_addr, f.eth, 6);
	if (sendto(fd, &f, flen, 0, (struct sockaddr *)&sll,
		   sizeof(sll)) != (ssize_t)flen) {
		ret = -errno;
		sodp_err("sendto(%s): %s", peer, strerror(errno));
	}
	close(fd);

	deadline = sodp_now_ms() + dev->timeout_ms;
	while (!ret && sodp_read_long(rcvd) <= before) {
		if (sodp_now_ms() > deadline) {
			sodp_err("%s did not receive the frame sent on %s",
				 dev->name, peer);
			ret = -ETIMEDOUT;
		}
		usleep(1000);
	}

out_restore:
	for (i = 0; i < 3; i++)
		if (old[i] >= 0 && old[i] != val[i])
			sodp_write_long(knob[i], old[i]);
	return ret;
}

long sodp_page_size(void)
{
	return sysconf(_SC_PAGESIZE);
}

/* A private anonymous mapping, or NULL. */
void *sodp_map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		sodp_err("mmap(%zu): %s", len, strerror(errno));
		return NULL;
	}
	return p;
}

void sodp_unmap(void *addr, size_t len)
{
	if (addr && munmap(addr, len))
		sodp_err("munmap: %s", strerror(errno));
}

/* FNV-1a of @name: a per-test seed that stays the same from run to run. */
uint64_t sodp_seed(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (*name) {
		h ^= (uint8_t)*name++;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* splitmix64 finaliser */
static uint64_t sodp_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t sodp_block(uint64_t seed, uint64_t blk)
{
	return sodp_mix(seed ^ sodp_mix(blk));
}

/*
 * The pattern is a function of (seed, pos), pos being the byte's index in
 * the stream, so any slice of it can be generated or checked on its own.
 */
uint8_t sodp_pattern_byte(uint64_t seed, size_t pos)
{
	return sodp_block(seed, pos / 8) >> (pos % 8 * 8);
}

void sodp_pattern_fill(void *buf, size_t len, uint64_t seed, size_t pos)
{
	uint8_t *p = buf;
	unsigned int b;
	uint64_t v;
	size_t i = 0;

	while (i < len) {
		v = sodp_block(seed, (pos + i) / 8);
		for (b = (pos + i) % 8; b < 8 && i < len; b++, i++)
			p[i] = v >> (b * 8);
	}
}

/* Return: -1 if @buf holds the pattern slice, else the first bad offset. */
ssize_t sodp_pattern_check(const void *buf, size_t len, uint64_t seed,
			   size_t pos)
{
	const uint8_t *p = buf;
	unsigned int b;
	uint64_t v;
	size_t i = 0;

	while (i < len) {
		v = sodp_block(seed, (pos + i) / 8);
		for (b = (pos + i) % 8; b < 8 && i < len; b++, i++)
			if (p[i] != (uint8_t)(v >> (b * 8)))
				return i;
	}
	return -1;
}

/* Return: -1 if every byte of @buf is @val, else the first other offset. */
ssize_t sodp_byte_check(const void *buf, size_t len, uint8_t val)
{
	const uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != val)
			return i;
	return -1;
}

/* The index of the RoCE v2 GID of port 1 that is @dev's IPv4 address. */
static int sodp_ud_gid_index(struct sodp_dev *dev)
{
	static const uint8_t v4mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};
	struct ibv_gid_entry ent[SODP_GID_ENTRIES];
	ssize_t i, n;

	n = ibv_query_gid_table(dev->ctx, ent, SODP_GID_ENTRIES, 0);
	for (i = 0; i < n; i++) {
		if (ent[i].port_num != 1 ||
		    ent[i].gid_type != IBV_GID_TYPE_ROCE_V2 ||
		    memcmp(ent[i].gid.raw, v4mapped, sizeof(v4mapped)) ||
		    memcmp(ent[i].gid.raw + 12, &dev->addr.sin_addr, 4))
			continue;
		return ent[i].gid_index;
	}
	sodp_err("%s: no RoCE v2 GID for %s", dev->name,
		 inet_ntoa(dev->addr.sin_addr));
	return -ENOENT;
}

static int sodp_ud_qp_create(struct sodp_dev *dev, struct sodp_end *end)
{
	struct ibv_qp_init_attr init = {
		.qp_type = IBV_QPT_UD,
		.cap = {
			.max_send_wr = SODP_QP_DEPTH,
			.max_recv_wr = SODP_QP_DEPTH,
			.max_send_sge = 1,
			.max_recv_sge = 1,
		},
	};
	struct ibv_qp_attr attr = {
		.qp_state = IBV_QPS_INIT,
		.pkey_index = 0,
		.port_num = 1,
		.qkey = SODP_UD_QKEY,
	};
	int ret;

	end->scq = ibv_create_cq(dev->ctx, SODP_CQ_DEPTH, NULL, NULL, 0);
	end->rcq = ibv_create_cq(dev->ctx, SODP_CQ_DEPTH, NULL, NULL, 0);
	if (!end->scq || !end->rcq) {
		ret = errno ? -errno : -ENOMEM;
		sodp_err("ibv_create_cq: %s", strerror(-ret));
		return ret;
	}
	init.send_cq = end->scq;
	init.recv_cq = end->rcq;
	end->qp = ibv_create_qp(dev->pd, &init);
	if (!end->qp) {
		ret = errno ? -errno : -EINVAL;
		sodp_err("ibv_create_qp(UD): %s", strerror(-ret));
		return ret;
	}
	ret = ibv_modify_qp(end->qp, &attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			    IBV_QP_PORT | IBV_QP_QKEY);
	if (!ret) {
		attr.qp_state = IBV_QPS_RTR;
		ret = ibv_modify_qp(end->qp, &attr, IBV_QP_STATE);
	}
	if (!ret) {
		attr.qp_state = IBV_QPS_RTS;
		attr.sq_psn = 0;
		ret = ibv_modify_qp(end->qp, &attr,
				    IBV_QP_STATE | IBV_QP_SQ_PSN);
	}
	if (ret) {
		sodp_err("ibv_modify_qp(UD): %s", strerror(ret));
		return -ret;
	}
	return 0;
}

/**
 * sodp_ud_create() - two UD QPs on @dev and an address handle between them
 * @dev: an open RoCE device
 * @ud: filled; on failure partly, sodp_ud_destroy() releases it
 *
 * The address handle names the device's own RoCE v2 GID (its IPv4
 * address), so datagrams loop back through the device like any other.
 *
 * Return: 0, -EOPNOTSUPP on iWARP (no UD), or another negative errno.
 */
int sodp_ud_create(struct sodp_dev *dev, struct sodp_ud *ud)
{
	struct ibv_ah_attr ah = {
		.is_global = 1,
		.port_num = 1,
		.grh.hop_limit = 64,
	};
	int idx, ret;

	memset(ud, 0, sizeof(*ud));
	if (dev->iwarp)
		return -EOPNOTSUPP;
	idx = sodp_ud_gid_index(dev);
	if (idx < 0)
		return idx;
	ret = ibv_query_gid(dev->ctx, 1, idx, &ah.grh.dgid);
	if (ret) {
		sodp_err("ibv_query_gid: %s", strerror(ret));
		return -ret;
	}
	ah.grh.sgid_index = idx;

	ret = sodp_ud_qp_create(dev, &ud->snd);
	if (!ret)
		ret = sodp_ud_qp_create(dev, &ud->rcv);
	if (ret)
		return ret;
	ud->ah = ibv_create_ah(dev->pd, &ah);
	if (!ud->ah) {
		ret = errno ? -errno : -EINVAL;
		sodp_err("ibv_create_ah: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

static void sodp_ud_end_destroy(struct sodp_end *end)
{
	if (end->qp && ibv_destroy_qp(end->qp))
		sodp_err("ibv_destroy_qp: %s", strerror(errno));
	if (end->scq && ibv_destroy_cq(end->scq))
		sodp_err("ibv_destroy_cq: %s", strerror(errno));
	if (end->rcq && ibv_destroy_cq(end->rcq))
		sodp_err("ibv_destroy_cq: %s", strerror(errno));
	end->qp = NULL;
	end->scq = NULL;
	end->rcq = NULL;
}

/* Undo sodp_ud_create(); a no-op on a zeroed @ud. */
void sodp_ud_destroy(struct sodp_ud *ud)
{
	if (ud->ah && ibv_destroy_ah(ud->ah))
		sodp_err("ibv_destroy_ah: %s", strerror(errno));
	ud->ah = NULL;
	sodp_ud_end_destroy(&ud->snd);
	sodp_ud_end_destroy(&ud->rcv);
}

/* A signaled UD SEND of [addr, addr + len) from @ud->snd to @ud->rcv. */
int sodp_ud_post_send(struct sodp_ud *ud, uint64_t wr_id, const void *addr,
		      uint32_t len, uint32_t lkey)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)addr,
		.length = len,
		.lkey = lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.ud = {
			.ah = ud->ah,
			.remote_qpn = ud->rcv.qp->qp_num,
			.remote_qkey = SODP_UD_QKEY,
		},
	};
	struct ibv_send_wr *bad = NULL;

	return sodp_post_ret("ibv_post_send(UD)",
			     ibv_post_send(ud->snd.qp, &wr, &bad));
}

/**
 * sodp_debugfs_get() - read one global counter of the sodp core
 * @name: file name under SODP_DEBUGFS (umems, pages_held, faults, ...)
 * @val: the value; signed, so that an underflow shows as such
 *
 * Return: 0, or a negative errno (-ENOENT without the sodp module or
 * debugfs).
 */
int sodp_debugfs_get(const char *name, int64_t *val)
{
	char path[256], buf[64], *end;
	int ret;

	snprintf(path, sizeof(path), SODP_DEBUGFS "/%s", name);
	ret = sodp_read_line(path, buf, sizeof(buf));
	if (ret) {
		sodp_err("%s: %s", path, strerror(-ret));
		return ret;
	}
	errno = 0;
	*val = strtoll(buf, &end, 10);
	if (errno || *end) {
		sodp_err("%s: bad value \"%s\"", path, buf);
		return -EINVAL;
	}
	return 0;
}

/* The whole output of @cmd (NUL-terminated, to free()), or NULL. */
static char *sodp_run_output(const char *cmd)
{
	size_t len = 0, cap = 0;
	char *out = NULL, *tmp;
	size_t n;
	FILE *f;
	int st;

	f = popen(cmd, "r");
	if (!f) {
		sodp_err("popen(%s): %s", cmd, strerror(errno));
		return NULL;
	}
	do {
		if (cap - len < 4096) {
			cap = cap ? 2 * cap : 16384;
			tmp = realloc(out, cap);
			if (!tmp) {
				free(out);
				pclose(f);
				return NULL;
			}
			out = tmp;
		}
		n = fread(out + len, 1, cap - len - 1, f);
		len += n;
	} while (n);
	out[len] = '\0';
	st = pclose(f);
	if (st) {
		sodp_err("%s: exit status %#x", cmd, st);
		free(out);
		return NULL;
	}
	return out;
}

/*
 * The next flat JSON object ("{...}", no nesting: what "rdma -j" prints
 * for resources and statistics) at or after *@pos; its length in *@len.
 */
static const char *sodp_json_next(const char **pos, size_t *len)
{
	const char *start = strchr(*pos, '{'), *end;

	if (!start)
		return NULL;
	end = strchr(start, '}');
	if (!end)
		return NULL;
	*pos = end + 1;
	*len = end + 1 - start;
	return start;
}

/* The value of "@key": in the object [@obj, @obj + @len), quotes removed. */
static bool sodp_json_get(const char *obj, size_t len, const char *key,
			  char *val, size_t vlen)
{
	char pat[64];
	const char *p, *end = obj + len;
	size_t plen, i;

	plen = snprintf(pat, sizeof(pat), "\"%s\":", key);
	for (p = obj; p + plen <= end; p++) {
		if (memcmp(p, pat, plen))
			continue;
		p += plen;
		while (p < end && (*p == ' ' || *p == '"'))
			p++;
		for (i = 0; p < end && i + 1 < vlen && !strchr("\",}", *p); i++)
			val[i] = *p++;
		val[i] = '\0';
		return i > 0;
	}
	return false;
}

static bool sodp_json_u64(const char *obj, size_t len, const char *key,
			  int base, uint64_t *val)
{
	char buf[32], *end;

	if (!sodp_json_get(obj, len, key, buf, sizeof(buf)))
		return false;
	errno = 0;
	*val = strtoull(buf, &end, base);
	return !errno && !*end;
}

static bool sodp_json_is(const char *obj, size_t len, const char *key,
			 const char *want)
{
	char buf[IBV_SYSFS_NAME_MAX];

	return sodp_json_get(obj, len, key, buf, sizeof(buf)) &&
	       !strcmp(buf, want);
}

/* The fields of struct sodp_mr_stats, named as "rdma statistic mr" does. */
static const struct {
	const char *name;
	size_t off;
} mr_fields[] = {
#define SODP_STAT(f) { #f, offsetof(struct sodp_mr_stats, f) }
	SODP_STAT(page_faults),
	SODP_STAT(pages_faulted),
	SODP_STAT(page_invalidations),
	SODP_STAT(pages_invalidated),
	SODP_STAT(page_prefetch),
	SODP_STAT(cache_hits),
	SODP_STAT(cache_misses),
	SODP_STAT(cache_recalls),
	SODP_STAT(deferrals),
	SODP_STAT(pages_mirrored),
	SODP_STAT(pages_cached),
#undef SODP_STAT
};

/**
 * sodp_mr_stats_get() - the sodp counters of one MR
 * @dev: the device name
 * @lkey: the MR's lkey
 * @st: the counters
 *
 * "rdma resource show mr" maps the lkey to the restrack id (mrn), "rdma
 * statistic show mr" gives the driver's counters of that mrn (iproute2 6.1
 * syntax; needs CAP_NET_ADMIN to see keys).
 *
 * Return: 0; -ENOENT if no such MR is listed; -ENODATA if the driver
 * reports no sodp counters for it (not an ODP MR, or no ODP support);
 * another negative errno if rdma could not be run.
 */
int sodp_mr_stats_get(const char *dev, uint32_t lkey,
		      struct sodp_mr_stats *st)
{
	uint64_t key, mrn = UINT64_MAX, v;
	const char *pos, *obj;
	char *out;
	size_t len, i;
	int ret = -ENOENT;

	memset(st, 0, sizeof(*st));
	out = sodp_run_output("rdma -j resource show mr 2>&1");
	if (!out)
		return -EIO;
	pos = out;
	while ((obj = sodp_json_next(&pos, &len))) {
		if (sodp_json_is(obj, len, "ifname", dev) &&
		    sodp_json_u64(obj, len, "lkey", 16, &key) &&
		    key == lkey && sodp_json_u64(obj, len, "mrn", 10, &mrn))
			break;
	}
	free(out);
	if (mrn == UINT64_MAX) {
		sodp_err("%s: no MR with lkey %#x", dev, lkey);
		return -ENOENT;
	}

	out = sodp_run_output("rdma -j statistic show mr 2>&1");
	if (!out)
		return -EIO;
	pos = out;
	while ((obj = sodp_json_next(&pos, &len))) {
		if (!sodp_json_is(obj, len, "ifname", dev) ||
		    !sodp_json_u64(obj, len, "mrn", 10, &v) || v != mrn)
			continue;
		ret = 0;
		for (i = 0; i < SODP_ARRAY_SIZE(mr_fields); i++) {
			if (!sodp_json_u64(obj, len, mr_fields[i].name, 10,
					   &v)) {
				ret = -ENODATA;
				break;
			}
			*(uint64_t *)((char *)st + mr_fields[i].off) = v;
		}
		break;
	}
	free(out);
	if (ret)
		sodp_err("%s: no sodp counters for mrn %llu (lkey %#x)", dev,
			 (unsigned long long)mrn, lkey);
	return ret;
}

/**
 * sodp_dev_mr_stats_sum() - the sodp counters of all MRs of a device, summed
 * @dev: the device name
 * @sum: the sums over every MR of @dev that "rdma statistic show mr" lists
 *	with sodp counters (ODP and no-pin MRs)
 * @nmr: how many MRs that was
 *
 * Return: 0, or a negative errno if rdma could not be run.
 */
int sodp_dev_mr_stats_sum(const char *dev, struct sodp_mr_stats *sum,
			  unsigned int *nmr)
{
	const char *pos, *obj;
	uint64_t v[SODP_ARRAY_SIZE(mr_fields)];
	char *out;
	size_t len, i;

	memset(sum, 0, sizeof(*sum));
	*nmr = 0;
	out = sodp_run_output("rdma -j statistic show mr 2>&1");
	if (!out)
		return -EIO;
	pos = out;
	while ((obj = sodp_json_next(&pos, &len))) {
		if (!sodp_json_is(obj, len, "ifname", dev))
			continue;
		for (i = 0; i < SODP_ARRAY_SIZE(mr_fields); i++) {
			if (!sodp_json_u64(obj, len, mr_fields[i].name, 10,
					   &v[i]))
				break;
		}
		if (i < SODP_ARRAY_SIZE(mr_fields))
			continue;
		for (i = 0; i < SODP_ARRAY_SIZE(mr_fields); i++)
			*(uint64_t *)((char *)sum + mr_fields[i].off) += v[i];
		(*nmr)++;
	}
	free(out);
	return 0;
}

/**
 * sodp_hw_counter_get() - one hw counter of port 1 of a device, from sysfs
 * @dev: the device name
 * @name: the counter (a file under /sys/class/infiniband/@dev/ports/1/
 *	hw_counters)
 * @val: its value
 *
 * The kernel refreshes the values it shows there at most every "lifespan"
 * ms (10 by default): a caller that wants what happened up to now sleeps
 * longer than that first.
 *
 * Return: 0, -ENOENT if the device has no such counter, or another
 * negative errno.
 */
int sodp_hw_counter_get(const char *dev, const char *name, uint64_t *val)
{
	char path[256], buf[64], *end;
	int ret;

	snprintf(path, sizeof(path),
		 "/sys/class/infiniband/%s/ports/1/hw_counters/%s", dev, name);
	ret = sodp_read_line(path, buf, sizeof(buf));
	if (ret) {
		sodp_err("%s: %s", path, strerror(-ret));
		return ret;
	}
	errno = 0;
	*val = strtoull(buf, &end, 10);
	if (errno || *end) {
		sodp_err("%s: bad value \"%s\"", path, buf);
		return -EINVAL;
	}
	return 0;
}

/**
 * sodp_link_stat_get() - one counter of "rdma statistic show link DEV/1"
 * @dev: the device name
 * @name: the counter
 * @val: its value
 *
 * Return: 0, -ENOENT if rdma does not list it for port 1 of @dev, or
 * another negative errno.
 */
int sodp_link_stat_get(const char *dev, const char *name, uint64_t *val)
{
	const char *pos, *obj;
	char cmd[128], *out;
	int ret = -ENOENT;
	size_t len;

	snprintf(cmd, sizeof(cmd), "rdma -j statistic show link %s/1 2>&1",
		 dev);
	out = sodp_run_output(cmd);
	if (!out)
		return -EIO;
	pos = out;
	while ((obj = sodp_json_next(&pos, &len))) {
		if (sodp_json_is(obj, len, "ifname", dev) &&
		    sodp_json_u64(obj, len, name, 10, val)) {
			ret = 0;
			break;
		}
	}
	if (ret)
		sodp_err("%s: no %s in: %.200s", cmd, name, out);
	free(out);
	return ret;
}

/*
 * The sodp policy for plain (non-ODP) MRs. The parameter shows either the
 * bare value or, enum-style, all values with the active one in brackets.
 */
enum sodp_pin_mode sodp_pin_mode(void)
{
	static const char * const names[] = {
		[SODP_PIN_PIN] = "pin",
		[SODP_PIN_AUTO] = "auto",
		[SODP_PIN_ALL] = "all",
	};
	char buf[128], *val = buf, *end;
	unsigned int i;
	int ret;

	ret = sodp_read_line(SODP_PIN_MODE_PATH, buf, sizeof(buf));
	if (ret == -ENOENT)
		return SODP_PIN_ABSENT;
	if (ret)
		return SODP_PIN_UNKNOWN;
	if (strchr(buf, '[')) {
		val = strchr(buf, '[') + 1;
		end = strchr(val, ']');
		if (!end)
			return SODP_PIN_UNKNOWN;
		*end = '\0';
	}
	val += strspn(val, " \t");
	val[strcspn(val, " \t")] = '\0';
	for (i = SODP_PIN_PIN; i <= SODP_PIN_ALL; i++)
		if (!strcmp(val, names[i]))
			return i;
	return SODP_PIN_UNKNOWN;
}

/**
 * sodp_pin_mode_write() - set sodp's pin_mode parameter at run time
 * @mode: "pin", "auto" or "all"
 *
 * Return: 0 or -errno (-EINVAL for a name the parameter refuses).
 */
int sodp_pin_mode_write(const char *mode)
{
	return sodp_write_line(SODP_PIN_MODE_PATH, mode);
}

const char *sodp_pin_mode_str(enum sodp_pin_mode mode)
{
	switch (mode) {
	case SODP_PIN_ABSENT:
		return "absent";
	case SODP_PIN_PIN:
		return "pin";
	case SODP_PIN_AUTO:
		return "auto";
	case SODP_PIN_ALL:
		return "all";
	default:
		return "unknown";
	}
}

/**
 * sodp_churn_fork() - fork and reap a child every 5 ms
 * @churn: a struct sodp_churn: runs until *stop, counts forks in *count
 *
 * Each fork write-protects the caller's private anonymous memory, so a
 * DMA-pinned or mirrored page of it must survive copy-on-write.
 *
 * Return: NULL (a pthread start routine).
 */
void *sodp_churn_fork(void *churn)
{
	struct sodp_churn *c = churn;

	while (!*c->stop) {
		pid_t pid = fork();

		if (!pid)
			_exit(0);
		if (pid > 0)
			waitpid(pid, NULL, 0);
		(*c->count)++;
		usleep(5000);
	}
	return NULL;
}

/**
 * sodp_move_pages_to() - move pages of this process to one NUMA node
 * @pages: the page addresses
 * @n: how many
 * @nodes: room for @n node numbers (filled with @node)
 * @status: room for @n per-page results
 * @node: the target node
 *
 * Return: what move_pages(2) returned (-1 with errno on failure).
 */
long sodp_move_pages_to(void **pages, size_t n, int *nodes, int *status,
			int node)
{
	size_t i;

	for (i = 0; i < n; i++)
		nodes[i] = node;
	return syscall(SYS_move_pages, 0, n, pages, nodes, status,
		       MPOL_MF_MOVE);
}

#define SODP_WRID_STREAM	0x5354524dull

static int stream_fail(struct sodp_stream *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	s->err = -EIO;
	return -EIO;
}

static int stream_op(struct sodp_stream *s, uint64_t i, enum ibv_wr_opcode op)
{
	struct sodp_end *cli = &s->pair->cli;
	bool write = op == IBV_WR_RDMA_WRITE;
	struct ibv_wc wc;
	int ret;

	ret = sodp_post_rdma(cli, op, SODP_WRID_STREAM,
			     write ? s->src : s->dst, s->len, s->mr->lkey,
			     (uintptr_t)s->tgt, s->mr->rkey, 0);
	if (!ret)
		ret = sodp_poll_one(cli->scq, &wc, s->timeout_ms);
	if (ret)
		return stream_fail(s, "%s %llu: %s", write ? "WRITE" : "READ",
				   (unsigned long long)i, strerror(-ret));
	if (wc.status != IBV_WC_SUCCESS || wc.wr_id != SODP_WRID_STREAM ||
	    wc.opcode != (write ? IBV_WC_RDMA_WRITE : IBV_WC_RDMA_READ) ||
	    wc.byte_len != s->len)
		return stream_fail(s, "%s %llu: status %s opcode %d len %u",
				   write ? "WRITE" : "READ",
				   (unsigned long long)i,
				   ibv_wc_status_str(wc.status), wc.opcode,
				   wc.byte_len);
	return 0;
}

/**
 * sodp_stream_step() - one checked WRITE + READ-back iteration of a stream
 * @s: the stream
 * @i: the iteration number (selects the pattern)
 *
 * Return: 0, or -EIO with @s->err and @s->why set.
 */
int sodp_stream_step(struct sodp_stream *s, uint64_t i)
{
	uint64_t seed = s->seed + i;
	ssize_t off;

	sodp_pattern_fill(s->src, s->len, seed, 0);
	if (stream_op(s, i, IBV_WR_RDMA_WRITE) ||
	    stream_op(s, i, IBV_WR_RDMA_READ))
		return s->err;
	off = sodp_pattern_check(s->dst, s->len, seed, 0);
	if (off >= 0)
		return stream_fail(s, "iteration %llu: READ byte %zd is %#x, expected %#x",
				   (unsigned long long)i, off, s->dst[off],
				   sodp_pattern_byte(seed, off));
	off = sodp_pattern_check(s->tgt, s->len, seed, 0);
	if (off >= 0)
		return stream_fail(s, "iteration %llu: CPU sees target byte %zd %#x, not %#x",
				   (unsigned long long)i, off, s->tgt[off],
				   sodp_pattern_byte(seed, off));
	return 0;
}

/**
 * sodp_stream_main() - thread body: iterate a stream until told to stop
 * @stream: the struct sodp_stream
 *
 * Runs sodp_stream_step() from @iters on until @stop is set or a step
 * fails; @iters counts the iterations done.
 *
 * Return: NULL.
 */
void *sodp_stream_main(void *stream)
{
	struct sodp_stream *s = stream;
	uint64_t i;

	for (i = s->iters; !__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE);
	     i++) {
		if (sodp_stream_step(s, i))
			break;
		__atomic_store_n(&s->iters, i + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/**
 * sodp_stream_iters() - iterations a stream has completed
 * @s: the stream
 *
 * Return: the count, read with acquire ordering.
 */
uint64_t sodp_stream_iters(struct sodp_stream *s)
{
	return __atomic_load_n(&s->iters, __ATOMIC_ACQUIRE);
}
