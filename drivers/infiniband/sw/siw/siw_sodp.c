// SPDX-License-Identifier: GPL-2.0
/*
 * siw memory regions served by sodp instead of pinned pages.
 *
 * An MR registered with IB_ACCESS_ON_DEMAND (or any user MR when the sodp
 * pin_mode says so) holds a sodp umem instead of a siw_umem. Transmit runs
 * in process context (the siw_tx kthreads or the post_send system call) and
 * takes each payload page with a transient reference, maps it and lets
 * kernel_sendmsg() copy it into the socket; the post_send caller faults
 * what is missing, the siw_tx thread (shared by every QP on its CPU) queues
 * the fault to the QP's own work item and pauses the send queue. Its pages are
 * never handed to TCP: a page in an skb stays there until the peer
 * acknowledges it, beyond any lease. Receive runs under
 * tcp_read_sock(), in softirq or under a lock_sock() owner, and must not
 * sleep: a page that is not resident stops the receive path at that byte
 * and defers the rest of the stream to a work item that faults the page in
 * and resumes reading the socket. See Documentation/sodp/siw.rst.
 */

#include <linux/module.h>
#include <linux/overflow.h>
#include <linux/preempt.h>
#include <linux/slab.h>
#include <net/sock.h>
#include <net/tcp.h>
#include <rdma/restrack.h>
#include <rdma/sodp.h>
#include <rdma/uverbs_ioctl.h>
#include <uapi/rdma/rdma_netlink.h>

#include "siw.h"
#include "siw_cm.h"
#include "siw_mem.h"
#include "sodp_version.h"

/*
 * A range that keeps being invalidated while we fault it makes sodp return
 * -EBUSY; that is the mm at work, not an error of the peer, so try again a
 * few times before failing the access.
 */
#define SIW_SODP_BUSY_RETRIES	8

/*
 * Consecutive deferrals on the same page without any byte placed in
 * between: the page is faulted in and taken away again every time (or the
 * fault keeps failing with a transient error). Terminate the QP rather than
 * let the peer wait forever.
 */
#define SIW_SODP_RX_MAX_RETRIES	16

/* The access flags that need the pages mapped writable. */
#define SIW_SODP_WRITE_ACCESS	(IB_ACCESS_LOCAL_WRITE | \
				 IB_ACCESS_REMOTE_WRITE | \
				 IB_ACCESS_REMOTE_ATOMIC)

/*
 * Receive deferrals and MR releases that cannot sleep where they are
 * triggered. Destroyed at module exit, after every device (and so every QP
 * and MR) is gone: that drains the release work.
 */
static struct workqueue_struct *siw_sodp_wq;

/**
 * siw_sodp_init() - set up the sodp support of siw
 *
 * Context: module init.
 * Return: 0 or -ENOMEM.
 */
int siw_sodp_init(void)
{
	siw_sodp_wq = alloc_workqueue("siw_sodp", WQ_UNBOUND, 0);
	return siw_sodp_wq ? 0 : -ENOMEM;
}

/**
 * siw_sodp_exit() - tear down the sodp support of siw
 *
 * Runs every queued MR release; no QP is left, so no deferral is queued.
 * Safe to call when siw_sodp_init() failed or did not run.
 *
 * Context: module exit after the devices are unregistered, or module init
 * failure.
 */
void siw_sodp_exit(void)
{
	if (!siw_sodp_wq)
		return;
	destroy_workqueue(siw_sodp_wq);
	siw_sodp_wq = NULL;
}

static bool siw_sodp_implicit(u64 start, u64 len)
{
	return start == 0 && len == U64_MAX;
}

/**
 * siw_sodp_wants_mr() - should a user MR be served by sodp from the start?
 * @access: IB access flags of the registration
 *
 * Context: process context.
 * Return: true for ODP registrations and, with sodp.pin_mode=all, for every
 * user MR.
 */
bool siw_sodp_wants_mr(int access)
{
	return (access & IB_ACCESS_ON_DEMAND) ||
	       sodp_pin_mode() == SODP_PIN_MODE_ALL;
}

/**
 * siw_sodp_may_fallback() - may a plain MR that could not be pinned use sodp?
 * @err: the errno siw_umem_get() returned
 *
 * With sodp.pin_mode=auto, memory that long-term pinning refuses (FS-DAX
 * files: -EOPNOTSUPP, writable shared file mappings: -EFAULT) is served by
 * sodp instead; siw_sodp_umem_get() still fails with -EFAULT if the
 * range is not mapped with the needed permission. -EFAULT also means memory
 * that is off limits (secretmem, VM_IO/VM_PFNMAP): sodp's own registration
 * refuses that with -EFAULT, so the fallback never serves it.
 *
 * Context: process context.
 * Return: true if the registration should be retried through sodp.
 */
bool siw_sodp_may_fallback(int err)
{
	return sodp_pin_mode() == SODP_PIN_MODE_AUTO &&
	       (err == -EOPNOTSUPP || err == -EFAULT);
}

/**
 * siw_sodp_umem_get() - mirror the memory of a new user MR
 * @sdev: the device of the MR, whose hw counters the umem counts in
 * @start: user virtual address of the region
 * @len: length of the region (start 0 and length U64_MAX: implicit ODP)
 * @access: IB access flags of the registration
 *
 * Nothing is pinned and nothing is charged to RLIMIT_MEMLOCK. An ODP MR is
 * mirrored lazily. A plain MR served by sodp (pin_mode auto/all) is faulted
 * in completely now, like pinning would, so that registering memory that
 * is not mapped still fails with -EFAULT; its pages are not held after.
 *
 * Context: process context, current->mm owns the region.
 * Return: the umem, or an ERR_PTR() (-EINVAL, -EFAULT, -ENOMEM, ...).
 */
struct sodp_umem *siw_sodp_umem_get(struct siw_device *sdev, u64 start,
				    u64 len, int access)
{
	struct sodp_umem *umem;
	unsigned int flags = 0;
	int err;

	if (siw_sodp_implicit(start, len)) {
		if (!(access & IB_ACCESS_ON_DEMAND))
			return ERR_PTR(-EINVAL);
		flags |= SODP_UMEM_IMPLICIT;
	}

	umem = sodp_umem_get(current->mm, start, len, access, flags,
			     sdev->sodp_stats);
	if (IS_ERR(umem))
		return umem;

	if (!(access & IB_ACCESS_ON_DEMAND)) {
		unsigned int pf = 0;

		if (access & SIW_SODP_WRITE_ACCESS)
			pf |= SODP_PREFETCH_WRITE;
		err = sodp_umem_prefetch(umem, start, len, pf);
		if (err)
			goto out_release;
	}
	return umem;

out_release:
	sodp_umem_release(umem);
	return ERR_PTR(err);
}

/**
 * siw_sodp_umem_release() - drop the umem of an MR that was never published
 * @umem: the umem from siw_sodp_umem_get()
 *
 * Context: process context, may sleep.
 */
void siw_sodp_umem_release(struct sodp_umem *umem)
{
	sodp_umem_release(umem);
}

static void siw_sodp_mem_free_work(struct work_struct *work)
{
	struct siw_mem *mem = container_of(work, struct siw_mem, free_work);

	sodp_umem_release(mem->sodp);
	kfree(mem);
}

/**
 * siw_sodp_mem_free() - free a memory object whose memory is a sodp umem
 * @mem: the memory object, its last reference gone
 *
 * The last reference of an MR may be dropped by the receive path in
 * softirq or under a spinlock, where sodp_umem_release() (which removes
 * the mm notifier and sleeps) cannot run: then the release goes to a work
 * item. Otherwise it runs at once, so that ibv_dereg_mr() returns with
 * the mirror gone.
 *
 * Context: any.
 */
void siw_sodp_mem_free(struct siw_mem *mem)
{
	/*
	 * preemptible() is false in softirq, under spinlocks and with
	 * interrupts off, and always false without CONFIG_PREEMPT_COUNT,
	 * where the work item is then the safe choice. siw never drops a
	 * memory reference under rcu_read_lock().
	 */
	if (preemptible()) {
		sodp_umem_release(mem->sodp);
		kfree(mem);
		return;
	}
	INIT_WORK(&mem->free_work, siw_sodp_mem_free_work);
	queue_work(siw_sodp_wq, &mem->free_work);
}

/*
 * Transmit: copy out of the MR. The pages of a sodp MR must not be handed
 * to TCP: with MSG_SPLICE_PAGES an skb keeps a page reference until the
 * peer acknowledges the data, and a peer that never does keeps the page
 * for as long as it likes, past every invalidation (an FS-DAX truncate
 * waits for it forever, and the blocks can be freed and reused while TCP
 * still sends from them). So a WQE that touches a sodp MR never uses
 * siw's zero-copy path (siw_sodp_wqe_uses_sodp()): siw_tx_hdt() maps each
 * page and kernel_sendmsg() copies the payload into the socket's own pages,
 * without waiting (MSG_DONTWAIT). The page reference taken for that is
 * dropped right after the copy. It is not a lease, so nothing the copy
 * does (a page allocation that reclaims, say) can wait for it in an
 * invalidation of the same page.
 */

/* No page for the next transmit access to fault in place. */
#define SIW_SODP_NO_VA		(~0ULL)

static int siw_sodp_copy_from(struct siw_mem *mem, u64 va, void *dst,
			      unsigned int len, unsigned int flags)
{
	int tries = 0;
	int err;

	do {
		err = sodp_umem_copy_from(mem->sodp, va, dst, len, flags);
	} while (err == -EBUSY && ++tries < SIW_SODP_BUSY_RETRIES);
	return err;
}

static void siw_sodp_tx_error(struct siw_qp *qp, int err)
{
	siw_dbg_qp(qp, "sodp copy failed, err = %d\n", err);

	/*
	 * A READ's source that the process cannot read is the peer's
	 * access error, like a READ beyond the MR (siw_check_sgl_tx()).
	 * A failing SEND or WRITE source is a local error, completed in
	 * error by siw_qp_sq_process().
	 */
	if (tx_type(tx_wqe(qp)) == SIW_OP_READ_RESPONSE)
		siw_init_terminate(qp, TERM_ERROR_LAYER_RDMAP,
				   RDMAP_ETYPE_REMOTE_PROTECTION,
				   siw_rdmap_error(E_ACCESS_PERM), 1);
}

/**
 * siw_sodp_wqe_uses_sodp() - does a send WQE read from a sodp MR?
 * @wqe: the WQE, its memory looked up by siw_check_sgl_tx()
 *
 * Such a WQE must be copied into the socket, never sent with zero copy.
 *
 * Context: the transmit path.
 * Return: true if one of the WQE's SGEs is in a sodp MR.
 */
bool siw_sodp_wqe_uses_sodp(struct siw_wqe *wqe)
{
	unsigned int i;

	if (wqe->sqe.flags & SIW_WQE_INLINE)
		return false;
	for (i = 0; i < wqe->sqe.num_sge && i < SIW_MAX_SGE; i++)
		if (wqe->mem[i] && wqe->mem[i]->is_sodp)
			return true;
	return false;
}

/*
 * Transmit deferral. Outside the post_send system call the send queue is
 * processed by the siw_tx thread of the QP's CPU, which serves every QP
 * bound to that CPU: a fault there sleeps for as long as the backing store
 * takes (a suspended block device, a stalled FUSE daemon or NFS server),
 * and every other QP on the CPU waits with it. So the siw_tx thread only
 * takes pages that are resident (SODP_NOFAULT). On a miss it queues the
 * fault to this QP's own work item and pauses the send queue exactly as a
 * full socket does (-EAGAIN, nothing of the FPDU sent); the work faults the
 * page in and starts the send queue again. The page it faulted is then
 * taken with a fault in place, once (@tx_retry_va), which bounds the
 * round trips when the mm keeps taking the page away and turns a fault
 * that failed into the access error it is. The post_send caller faults its
 * own pages in place: it waits for nobody else's memory.
 */

static bool siw_sodp_tx_in_place(struct siw_qp *qp, u64 va)
{
	struct siw_sodp_qp *sq = &qp->sodp;

	if (qp->tx_ctx.in_syscall)
		return true;
	if (READ_ONCE(sq->tx_retry_va) == (va & PAGE_MASK)) {
		WRITE_ONCE(sq->tx_retry_va, SIW_SODP_NO_VA);
		return true;
	}
	return false;
}

static void siw_sodp_tx_work(struct work_struct *work)
{
	struct siw_sodp_qp *sq = container_of(work, struct siw_sodp_qp,
					      tx_work);
	struct siw_qp *qp = container_of(sq, struct siw_qp, sodp);
	struct siw_mem *mem = sq->tx_mem;
	u64 va = sq->tx_va, len = sq->tx_len, end;
	struct page *page;
	int tries = 0;

	if (READ_ONCE(qp->attrs.state) == SIW_QP_STATE_RTS) {
		do {
			page = sodp_umem_get_page(mem->sodp, va, 0);
		} while (page == ERR_PTR(-EBUSY) &&
			 ++tries < SIW_SODP_BUSY_RETRIES);
		siw_dbg_qp(qp, "transmit fault at %#llx, err = %d\n", va,
			   PTR_ERR_OR_ZERO(page));
		if (!IS_ERR(page)) {
			put_page(page);
			/* The rest of the SGE (read faults only), best effort. */
			end = min(va + len, sodp_umem_start(mem->sodp) +
					    sodp_umem_length(mem->sodp));
			va = (va & PAGE_MASK) + PAGE_SIZE;
			if (va < end)
				sodp_umem_prefetch(mem->sodp, va, end - va, 0);
		}
	}
	WRITE_ONCE(sq->tx_retry_va, sq->tx_va & PAGE_MASK);
	sq->tx_mem = NULL;
	/* A miss from here on queues a new deferral. */
	smp_store_release(&sq->tx_pending, false);
	siw_sq_start(qp);
	siw_mem_put(mem);
	siw_qp_put(qp);
}

/*
 * The siw_tx thread missed @va of @mem, @len bytes of the SGE from there
 * on: queue its fault. Returns -EAGAIN, for the caller to pause the send
 * queue with nothing of the FPDU sent.
 */
static int siw_sodp_tx_defer(struct siw_qp *qp, struct siw_mem *mem, u64 va,
			     u64 len)
{
	struct siw_sodp_qp *sq = &qp->sodp;

	/* Its end starts the send queue again. */
	if (smp_load_acquire(&sq->tx_pending))
		return -EAGAIN;

	/* Dropped by the work, or by siw_sodp_qp_destroy() if cancelled. */
	siw_qp_get(qp);
	kref_get(&mem->ref);
	sq->tx_mem = mem;
	sq->tx_va = va;
	sq->tx_len = max_t(u64, len, 1);
	WRITE_ONCE(sq->tx_pending, true);
	sodp_umem_count_deferral(mem->sodp);
	/* Not pending: tx_pending was clear, and only we queue it then. */
	queue_work(siw_sodp_wq, &sq->tx_work);
	return -EAGAIN;
}

/**
 * siw_sodp_tx_copy() - copy a short payload out of a sodp MR
 * @qp: the transmitting QP
 * @mem: the MR, its range checked by siw_check_sge()
 * @va: user virtual address of the payload
 * @dst: kernel destination
 * @len: bytes to copy
 *
 * In the siw_tx thread a payload that is not resident is not faulted
 * here: its fault is queued to the QP's transmit deferral and -EAGAIN
 * returned, for the caller to start the WQE over once the send queue
 * runs again.
 *
 * Context: the transmit path (process context; in the post_send system
 * call may fault pages in).
 * Return: 0, -EAGAIN (deferred), or a negative errno (-EFAULT when the
 * process cannot read the range).
 */
int siw_sodp_tx_copy(struct siw_qp *qp, struct siw_mem *mem, u64 va,
		     void *dst, unsigned int len)
{
	int err;

	if (siw_sodp_tx_in_place(qp, va)) {
		err = siw_sodp_copy_from(mem, va, dst, len, 0);
	} else {
		err = siw_sodp_copy_from(mem, va, dst, len, SODP_NOFAULT);
		if (err == -EAGAIN)
			return siw_sodp_tx_defer(qp, mem, va, len);
	}
	if (err)
		siw_sodp_tx_error(qp, err);
	return err;
}

/**
 * siw_sodp_tx_get_page() - a page of FPDU payload from a sodp MR
 * @qp: the transmitting QP
 * @mem: the MR, its range checked by siw_check_sge()
 * @va: user virtual address in the page
 * @len: bytes of the WQE's SGE from @va on, which a deferred fault may
 *	fault too
 *
 * The page comes with a transient reference (sodp_umem_get_page()), not a
 * lease: the transmit path maps it for kernel_sendmsg() to copy from and
 * drops the reference with siw_sodp_tx_put_pages() right after. The page
 * must never reach TCP itself (no zero copy, see siw_sodp_wqe_uses_sodp()).
 * An invalidation of the page never waits for the transmit path. In the
 * siw_tx thread a page that is not resident is not faulted here: its
 * fault is queued to the QP's transmit deferral and ERR_PTR(-EAGAIN)
 * returned, for siw_tx_hdt() to pause the send queue with nothing of the
 * FPDU sent.
 *
 * Context: the transmit path (process context; in the post_send system
 * call may fault pages in).
 * Return: the page, ERR_PTR(-EAGAIN) (deferred), or another ERR_PTR()
 * (-EFAULT when the process cannot read it).
 */
struct page *siw_sodp_tx_get_page(struct siw_qp *qp, struct siw_mem *mem,
				  u64 va, u64 len)
{
	unsigned int flags = SODP_NOFAULT;
	struct page *page;
	int tries = 0;

	if (siw_sodp_tx_in_place(qp, va))
		flags = 0;
	do {
		page = sodp_umem_get_page(mem->sodp, va, flags);
	} while (page == ERR_PTR(-EBUSY) && ++tries < SIW_SODP_BUSY_RETRIES);
	if (page == ERR_PTR(-EAGAIN) && flags)
		return ERR_PTR(siw_sodp_tx_defer(qp, mem, va, len));
	if (IS_ERR(page))
		siw_sodp_tx_error(qp, PTR_ERR(page));
	return page;
}

/**
 * siw_sodp_tx_put_pages() - drop the references of siw_sodp_tx_get_page()
 * @pages: the FPDU's page array
 * @mask: bit i set if @pages[i] came from siw_sodp_tx_get_page()
 * @n: number of entries of @pages to look at
 *
 * Context: the transmit path.
 */
void siw_sodp_tx_put_pages(struct page **pages, unsigned long mask, int n)
{
	int i;

	for (i = 0; i < n && mask; i++) {
		if (mask & BIT(i)) {
			put_page(pages[i]);
			mask &= ~BIT(i);
		}
	}
}

/*
 * Receive.
 *
 * Concurrency: siw_tcp_rx_data() runs under tcp_read_sock(), which needs
 * the socket lock: either in softirq with the socket spinlock held and the
 * socket not owned by a process (tcp_v4_rcv() -> sk_data_ready), or in the
 * process that owns the socket (release_sock() running the backlog, which
 * calls sk_data_ready too). The two exclude each other: while a process
 * owns the socket, softirq queues packets to the backlog instead. So the
 * receive state (qp->rx_stream, rx_fpdu, the rx_* fields of struct
 * siw_sodp_qp) has one writer at a time. The deferral work joins the same
 * rule: it takes lock_sock() before it clears rx_deferred and calls
 * tcp_read_sock(). Packets arriving meanwhile wait in the backlog and are
 * read by release_sock(). Like siw_qp_llp_data_ready() it takes
 * sk_callback_lock (read) to find the QP through sk_user_data and only
 * try-locks state_lock (holders of state_lock for writing may wait for the
 * socket); when that fails it tries again a millisecond later.
 */

static void siw_sodp_rx_put(struct siw_qp *qp, struct siw_mem *mem,
			    struct sock *sk)
{
	sock_put(sk);
	siw_mem_put(mem);
	siw_qp_put(qp);
}

/*
 * Fault the page at @va writable, then the rest of the @len bytes the
 * message will place from @va on (best effort), and nothing beyond: a write
 * fault has side effects (block allocation, COW of a private file page,
 * page_mkwrite) that pages the message does not write must not get.
 */
static int siw_sodp_rx_fault(struct siw_mem *mem, u64 va, u64 len)
{
	u64 start = sodp_umem_start(mem->sodp), end, msg_end;
	struct sodp_access acc;
	int tries = 0;
	void *kaddr;
	int err;

	/*
	 * A lease puts the page into sodp's cache too, which the receive
	 * path's non-faulting access needs when the cache is full of dirty
	 * pages that only a sleepable caller may trim.
	 */
	do {
		err = sodp_umem_access_begin(mem->sodp, va, 1, SODP_WRITE, &acc,
					     &kaddr);
	} while (err == -EBUSY && ++tries < SIW_SODP_BUSY_RETRIES);
	if (err)
		return err;
	sodp_umem_access_end(&acc);

	if (check_add_overflow(start, sodp_umem_length(mem->sodp), &end))
		end = U64_MAX;
	/* The caller's @len lies in the MR, this is only belt and braces. */
	if (!check_add_overflow(va, len, &msg_end))
		end = min(end, msg_end);
	va = (va & PAGE_MASK) + PAGE_SIZE;
	/* Memory ahead may be unmapped or read-only: not our miss. */
	if (va < end)
		sodp_umem_prefetch(mem->sodp, va, end - va,
				   SODP_PREFETCH_WRITE);
	return 0;
}

/* Is @qp still the QP reading @sk? Caller holds sk_callback_lock. */
static bool siw_sodp_sk_is_qp(struct sock *sk, struct siw_qp *qp)
{
	return sk->sk_user_data && sk_to_qp(sk) == qp;
}

static void siw_sodp_rx_work(struct work_struct *work)
{
	struct siw_sodp_qp *sq = container_of(to_delayed_work(work),
					      struct siw_sodp_qp, rx_work);
	struct siw_qp *qp = container_of(sq, struct siw_qp, sodp);
	/* The new deferral of a resumed receive replaces these fields. */
	struct siw_mem *mem = sq->rx_mem;
	struct sock *sk = sq->rx_sk;
	bool done = true;

	if (!sq->rx_faulted) {
		int err = 0;

		if (READ_ONCE(qp->attrs.state) == SIW_QP_STATE_RTS)
			err = siw_sodp_rx_fault(mem, sq->rx_va, sq->rx_len);
		siw_dbg_qp(qp, "deferred fault at %#llx, err = %d\n",
			   sq->rx_va, err);
		/*
		 * -EFAULT/-ERANGE: the process cannot write there, make the
		 * resumed receive fail on this page. Anything else (-EBUSY,
		 * -ENOMEM) is retried by the next miss, which the retry
		 * bound of siw_sodp_rx_defer() limits.
		 */
		sq->rx_failed = err == -EFAULT || err == -ERANGE;
		sq->rx_fail_va = sq->rx_va & PAGE_MASK;
		sq->rx_faulted = true;
	}

	lock_sock(sk);
	read_lock_bh(&sk->sk_callback_lock);
	if (siw_sodp_sk_is_qp(sk, qp)) {
		if (down_read_trylock(&qp->state_lock)) {
			sq->rx_deferred = false;
			if (qp->attrs.state == SIW_QP_STATE_RTS &&
			    !qp->rx_stream.rx_suspend) {
				read_descriptor_t rd_desc = {
					.arg.data = qp,
					.count = 1,
				};

				tcp_read_sock(sk, &rd_desc, siw_tcp_rx_data);
			}
			up_read(&qp->state_lock);
		} else {
			/* Keep the deferral (and its references). */
			done = !queue_delayed_work(siw_sodp_wq, &sq->rx_work,
						   msecs_to_jiffies(1));
		}
	} else {
		/* The connection is gone: nothing to resume. */
		sq->rx_deferred = false;
	}
	read_unlock_bh(&sk->sk_callback_lock);
	release_sock(sk);

	if (done)
		siw_sodp_rx_put(qp, mem, sk);
}

/*
 * Stop the receive path at @va, a page of @mem that is not resident, and
 * queue the fault of the @len bytes from @va on that the message will
 * place. Called from siw_sodp_rx_mem(), i.e. from the receive path under
 * the socket lock. Returns 0 if deferred, -EACCES if the QP is to be
 * terminated instead.
 */
static int siw_sodp_rx_defer(struct siw_qp *qp, struct siw_mem *mem, u64 va,
			     u64 len)
{
	struct siw_sodp_qp *sq = &qp->sodp;
	u64 page = va & PAGE_MASK;
	struct sock *sk;

	/*
	 * The deferral that just resumed us could not fault this page: fail
	 * the access instead of faulting it again. That verdict is about
	 * that one fault; it is dropped here, whatever the page, and by any
	 * byte placed (siw_sodp_rx_mem()), so a later miss at the address
	 * (the page made writable since, evicted, a new MR there) faults
	 * afresh.
	 */
	if (sq->rx_failed) {
		sq->rx_failed = false;
		if (sq->rx_fail_va == page)
			return -EACCES;
	}

	if (page == sq->rx_last_va && sq->rx_bytes == sq->rx_last_bytes) {
		if (++sq->rx_retries > SIW_SODP_RX_MAX_RETRIES) {
			pr_warn_ratelimited("siw: [QP %u]: page %#llx keeps missing, giving up\n",
					    qp_id(qp), page);
			return -EACCES;
		}
	} else {
		sq->rx_retries = 0;
		sq->rx_last_va = page;
		sq->rx_last_bytes = sq->rx_bytes;
	}

	if (!qp->attrs.sk || !qp->attrs.sk->sk)
		return -EACCES;
	sk = qp->attrs.sk->sk;

	/* Dropped by the work, or by siw_sodp_qp_destroy() if cancelled. */
	siw_qp_get(qp);
	kref_get(&mem->ref);
	sock_hold(sk);

	sq->rx_mem = mem;
	sq->rx_sk = sk;
	sq->rx_va = va;
	sq->rx_len = len;
	sq->rx_faulted = false;
	sq->rx_deferred = true;
	sodp_umem_count_deferral(mem->sodp);

	/* Not pending: rx_deferred was clear, and only we queue it then. */
	if (!queue_delayed_work(siw_sodp_wq, &sq->rx_work, 0)) {
		sq->rx_deferred = false;
		siw_sodp_rx_put(qp, mem, sk);
		return -EACCES;
	}
	return 0;
}

/*
 * Bytes the message being received will place from the missing byte on,
 * @copied bytes into this placement of which @left are still to come:
 * - a READ response: the rest of the READ, whose single SGE the
 *   requester's WQE holds (every byte up to its end arrives in order);
 * - a WRITE (tagged, contiguous in the MR): the rest of this DDP
 *   segment's payload, the receiver knows no more of the message;
 * - a SEND may continue in another SGE: only @left is known to land in
 *   this MR.
 */
static u64 siw_sodp_rx_len(struct siw_rx_stream *srx, int left, int copied)
{
	u64 len = left;

	if (__rdmap_get_opcode(&srx->hdr.ctrl) == RDMAP_RDMA_READ_RESP) {
		struct siw_wqe *wqe = rx_wqe(&rx_qp(srx)->rx_tagged);
		u64 done = (u64)wqe->processed + copied;

		if (wqe->bytes > done)
			len = max_t(u64, len, wqe->bytes - done);
	} else if (srx->hdr.ctrl.ddp_rdmap_ctrl & DDP_FLAG_TAGGED) {
		len = max_t(u64, len, srx->fpdu_part_rem - copied);
	}
	return len;
}

/**
 * siw_sodp_rx_mem() - place received payload into a sodp MR
 * @srx: the QP's receive stream, positioned at the payload in srx->skb
 * @mem: the target MR, its range and rights checked by the caller
 * @va: user virtual address of the first byte
 * @len: bytes to place
 *
 * Copies page by page from the skb through non-faulting sodp leases and
 * advances the stream over what it placed. At the first page that is not
 * resident it stops, queues a deferral (siw_sodp_rx_defer()) and returns
 * the bytes placed so far: the caller accounts them and returns -EAGAIN,
 * and siw_tcp_rx_data() then consumes nothing more, so the rest stays in
 * the socket and TCP flow control holds the sender back.
 *
 * Context: the receive path: softirq or socket owner, never sleeps.
 * Return: @len; fewer bytes (0 or more) when deferred, with
 * siw_sodp_rx_deferred() true; -EACCES when the process cannot write the
 * page (the caller terminates the QP with an access error); -EFAULT when
 * the skb cannot be read (internal error).
 */
int siw_sodp_rx_mem(struct siw_rx_stream *srx, struct siw_mem *mem, u64 va,
		    int len)
{
	struct siw_qp *qp = rx_qp(srx);
	bool skb_err = false;
	int copied = 0;
	int rv = 0;

	while (len > 0) {
		int bytes = min_t(int, len, PAGE_SIZE - offset_in_page(va));
		struct sodp_access acc;
		void *kaddr;

		rv = sodp_umem_access_begin(mem->sodp, va, bytes,
					    SODP_NOFAULT | SODP_WRITE, &acc,
					    &kaddr);
		if (rv)
			break;
		rv = skb_copy_bits(srx->skb, srx->skb_offset, kaddr, bytes);
		sodp_umem_access_end(&acc);
		if (rv) {
			skb_err = true;
			break;
		}
		/* CRC over the skb: the process may change its buffer. */
		if (srx->mpa_crc_hd)
			siw_crc_skb(srx, bytes);

		srx->skb_offset += bytes;
		copied += bytes;
		va += bytes;
		len -= bytes;
	}
	srx->skb_copied += copied;
	srx->skb_new -= copied;
	qp->sodp.rx_bytes += copied;
	if (copied)
		qp->sodp.rx_failed = false;

	if (skb_err)
		return -EFAULT;
	switch (rv) {
	case 0:
		return copied;
	case -EAGAIN:
	case -ENOMEM:
		rv = siw_sodp_rx_defer(qp, mem, va,
				       siw_sodp_rx_len(srx, len, copied));
		return rv ? rv : copied;
	default:
		siw_dbg_qp(qp, "sodp access at %#llx failed, err = %d\n",
			   va, rv);
		return -EACCES;
	}
}

/**
 * siw_sodp_qp_init() - initialise the sodp state of a new QP
 * @qp: the QP
 *
 * Context: process context (QP creation).
 */
void siw_sodp_qp_init(struct siw_qp *qp)
{
	INIT_DELAYED_WORK(&qp->sodp.rx_work, siw_sodp_rx_work);
	INIT_WORK(&qp->sodp.tx_work, siw_sodp_tx_work);
	qp->sodp.tx_retry_va = SIW_SODP_NO_VA;
}

/**
 * siw_sodp_qp_destroy() - stop the sodp activity of a QP being destroyed
 * @qp: the QP, already moved out of RTS under its state_lock
 *
 * Cancels a pending receive or transmit deferral or waits for a running
 * one (which then finds the QP out of RTS and resumes nothing), dropping
 * the references it held.
 *
 * Context: process context, may sleep.
 */
void siw_sodp_qp_destroy(struct siw_qp *qp)
{
	struct siw_sodp_qp *sq = &qp->sodp;

	if (cancel_delayed_work_sync(&sq->rx_work)) {
		sq->rx_deferred = false;
		siw_sodp_rx_put(qp, sq->rx_mem, sq->rx_sk);
	}
	if (cancel_work_sync(&sq->tx_work)) {
		sq->tx_pending = false;
		siw_mem_put(sq->tx_mem);
		sq->tx_mem = NULL;
		siw_qp_put(qp);
	}
}

/**
 * siw_sodp_query_device() - advertise on-demand paging
 * @attr: the device attributes being reported
 *
 * Explicit and implicit ODP; on RC (iWARP's only transport): SEND, RECV,
 * WRITE, READ and SRQ receive. siw has no atomics.
 *
 * Context: process context.
 */
void siw_sodp_query_device(struct ib_device_attr *attr)
{
	struct ib_odp_caps *caps = &attr->odp_caps;

	attr->kernel_cap_flags |= IBK_ON_DEMAND_PAGING;
	caps->general_caps = IB_ODP_SUPPORT | IB_ODP_SUPPORT_IMPLICIT;
	caps->per_transport_caps.rc_odp_caps = IB_ODP_SUPPORT_SEND |
					       IB_ODP_SUPPORT_RECV |
					       IB_ODP_SUPPORT_WRITE |
					       IB_ODP_SUPPORT_READ |
					       IB_ODP_SUPPORT_SRQ_RECV;
}

/**
 * siw_sodp_dev_init() - allocate the sodp counters of a new device
 * @sdev: the device, not registered yet
 *
 * Every sodp MR of @sdev counts there; they are the device's hw counters
 * (siw has no others).
 *
 * Context: device setup, process context.
 * Return: 0 or -ENOMEM.
 */
int siw_sodp_dev_init(struct siw_device *sdev)
{
	sdev->sodp_stats = sodp_dev_stats_alloc();
	return sdev->sodp_stats ? 0 : -ENOMEM;
}

/**
 * siw_sodp_dev_cleanup() - drop the sodp counters of a device being freed
 * @sdev: the device; siw_sodp_dev_init() may have failed or not run
 *
 * An MR released later by siw_sodp_mem_free_work() keeps the counters
 * alive until it is gone.
 *
 * Context: dealloc_driver, process context.
 */
void siw_sodp_dev_cleanup(struct siw_device *sdev)
{
	sodp_dev_stats_put(sdev->sodp_stats);
	sdev->sodp_stats = NULL;
}

/* The hw counters of a siw port: the sodp counters of its device. */
static const struct rdma_stat_desc siw_sodp_hw_descs[] = {
	{ .name = "sodp_page_faults" },
	{ .name = "sodp_pages_faulted" },
	{ .name = "sodp_page_invalidations" },
	{ .name = "sodp_pages_invalidated" },
	{ .name = "sodp_page_prefetch" },
	{ .name = "sodp_cache_hits" },
	{ .name = "sodp_cache_misses" },
	{ .name = "sodp_cache_recalls" },
	{ .name = "sodp_deferrals" },
	{ .name = "sodp_pages_held" },
};

/* What each entry of siw_sodp_hw_descs[] shows. */
static const enum sodp_dev_counter siw_sodp_hw_ids[] = {
	SODP_DEV_PAGE_FAULTS,
	SODP_DEV_PAGES_FAULTED,
	SODP_DEV_PAGE_INVALIDATIONS,
	SODP_DEV_PAGES_INVALIDATED,
	SODP_DEV_PAGE_PREFETCH,
	SODP_DEV_CACHE_HITS,
	SODP_DEV_CACHE_MISSES,
	SODP_DEV_CACHE_RECALLS,
	SODP_DEV_DEFERRALS,
	SODP_DEV_PAGES_HELD,
};

/**
 * siw_sodp_alloc_hw_port_stats() - describe the hw counters of a port
 * @ibdev: the device
 * @port_num: the port (siw has one)
 *
 * Context: process context (device registration).
 * Return: the counter set, or NULL when out of memory.
 */
struct rdma_hw_stats *siw_sodp_alloc_hw_port_stats(struct ib_device *ibdev,
						   u32 port_num)
{
	BUILD_BUG_ON(ARRAY_SIZE(siw_sodp_hw_descs) !=
		     ARRAY_SIZE(siw_sodp_hw_ids));

	return rdma_alloc_hw_stats_struct(siw_sodp_hw_descs,
					  ARRAY_SIZE(siw_sodp_hw_descs),
					  RDMA_HW_STATS_DEFAULT_LIFESPAN);
}

/**
 * siw_sodp_get_hw_stats() - read the hw counters of a port
 * @ibdev: the device
 * @stats: the counter set from siw_sodp_alloc_hw_port_stats()
 * @port_num: the port; the counters are the device's
 * @index: the counter asked for; all are read anyway
 *
 * Context: process context (sysfs, netlink).
 * Return: the number of counters read, or -EINVAL without a port.
 */
int siw_sodp_get_hw_stats(struct ib_device *ibdev,
			  struct rdma_hw_stats *stats, u32 port_num,
			  int index)
{
	if (!port_num || !stats)
		return -EINVAL;
	sodp_dev_stats_read(to_siw_dev(ibdev)->sodp_stats, siw_sodp_hw_ids,
			    ARRAY_SIZE(siw_sodp_hw_ids), stats->value);
	return ARRAY_SIZE(siw_sodp_hw_ids);
}

/**
 * siw_sodp_fill_stat_mr_entry() - per-MR sodp counters for rdma statistic
 * @msg: the netlink message being built
 * @ibmr: the MR
 *
 * Context: process context (netlink dump).
 * Return: 0, or -EMSGSIZE when the message is full.
 */
int siw_sodp_fill_stat_mr_entry(struct sk_buff *msg, struct ib_mr *ibmr)
{
	struct siw_mem *mem = to_siw_mr(ibmr)->mem;

	if (!mem || !mem->is_sodp)
		return 0;
	return sodp_umem_fill_stat_entry(mem->sodp, msg);
}

/* Stops an asynchronous prefetch early once its MR is deregistered. */
static bool siw_sodp_mem_dying(void *arg)
{
	struct siw_mem *mem = arg;

	/* siw_mr_drop_mem() clears stag_valid before the put. */
	return !READ_ONCE(mem->stag_valid);
}

static void siw_sodp_mem_put(void *arg)
{
	struct siw_mem *mem = arg;

	siw_mem_put(mem);
}

static const struct sodp_advise_ops siw_sodp_advise_ops = {
	.owner = THIS_MODULE,
	.put = siw_sodp_mem_put,
	.dying = siw_sodp_mem_dying,
};

/* Look up the sodp MR of an SGE and check it; returns a referenced mem. */
static struct siw_mem *siw_sodp_prefetch_mem(struct ib_pd *pd,
					     struct ib_sge *sge, int perms)
{
	struct siw_device *sdev = to_siw_dev(pd->device);
	struct siw_mem *mem;
	u64 end;

	mem = siw_mem_id2obj(sdev, sge->lkey >> 8);
	if (!mem)
		return NULL;
	if (!mem->is_sodp || mem->is_mw || !mem->stag_valid ||
	    mem->stag != sge->lkey || mem->pd != pd ||
	    (mem->perms & perms) != perms ||
	    check_add_overflow(sge->addr, (u64)sge->length, &end) ||
	    sge->addr < mem->va || end - mem->va > mem->len) {
		siw_mem_put(mem);
		return NULL;
	}
	return mem;
}

/**
 * siw_sodp_advise_mr() - ibv_advise_mr() for sodp MRs
 * @pd: protection domain of the MRs
 * @advice: PREFETCH, PREFETCH_WRITE or PREFETCH_NO_FAULT
 * @flags: IB_UVERBS_ADVISE_MR_FLAG_FLUSH makes the call synchronous
 * @sg_list: ranges given by lkey, address and length
 * @num_sge: entries in @sg_list
 * @attrs: uverbs attributes (unused)
 *
 * The prefetch itself is sodp_advise_submit()'s: without FLUSH a work item
 * holds a reference on every memory object until it is done, so it never
 * outlives them, and stops early when an MR is deregistered meanwhile.
 *
 * Context: process context.
 * Return: 0; -EOPNOTSUPP for an unknown advice or flag; -EINVAL for an
 * lkey that does not name a sodp MR of @pd with the needed access, or a
 * range outside it; with FLUSH, the errno of the first failing prefetch
 * (-EFAULT for memory that cannot be faulted); -ENOMEM.
 */
int siw_sodp_advise_mr(struct ib_pd *pd,
		       enum ib_uverbs_advise_mr_advice advice, u32 flags,
		       struct ib_sge *sg_list, u32 num_sge,
		       struct uverbs_attr_bundle *attrs)
{
	struct sodp_advise *adv;
	struct siw_mem *mem;
	bool write;
	u32 i;

	adv = sodp_advise_alloc(advice, flags, num_sge, &siw_sodp_advise_ops,
				&write);
	if (IS_ERR(adv))
		return PTR_ERR(adv);

	for (i = 0; i < num_sge; i++) {
		mem = siw_sodp_prefetch_mem(pd, &sg_list[i],
					    write ? IB_ACCESS_LOCAL_WRITE : 0);
		if (!mem) {
			sodp_advise_abort(adv);
			return -EINVAL;
		}
		sodp_advise_add(adv, mem, mem->sodp, sg_list[i].addr,
				sg_list[i].length);
	}
	return sodp_advise_submit(adv);
}

/* Tells this build from the stock one (modinfo, DKMS's version check). */
MODULE_VERSION(SODP_VERSION);
